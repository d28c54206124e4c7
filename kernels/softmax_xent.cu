// Softmax cross-entropy with integer targets.  Must match minialex/backend/numpy_ref.py:
// softmax_xent_forward(), softmax_xent_backward().
//
//   m = max_j z[n,j];  s = sum_j exp(z[n,j] - m);  probs[n,j] = exp(z[n,j] - m) / s
//   loss[n] = -(z[n,t] - m - log s),  t = target[n]
//   glogits[n,j] = (probs[n,j] - [j == t]) * gloss[n]
//
// Thread mapping.  Forward: one thread per row (N rows of K logits: small next to the layers
// around it).  Backward: one thread per element.

template <typename T>
__global__ void softmax_xent_forward(const T* logits, const long long* target, T* loss, T* probs,
                                     long long N, long long K) {
    for (long long n = blockIdx.x * (long long)blockDim.x + threadIdx.x; n < N; n += (long long)blockDim.x * gridDim.x) {
        const T* z = logits + n * K;
        T m = z[0];
        for (long long j = 1; j < K; ++j) m = z[j] > m ? z[j] : m;
        T s = T(0);
        for (long long j = 0; j < K; ++j) s += exp(z[j] - m);
        T log_s = log(s);
        for (long long j = 0; j < K; ++j) probs[n * K + j] = exp(z[j] - m - log_s);
        loss[n] = -(z[target[n]] - m - log_s);
    }
}

template <typename T>
__global__ void softmax_xent_backward(const T* probs, const long long* target, const T* gloss, T* glogits,
                                      long long N, long long K) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < N * K; i += (long long)blockDim.x * gridDim.x) {
        long long n = i / K, j = i % K;
        glogits[i] = (probs[i] - (j == target[n] ? T(1) : T(0))) * gloss[n];
    }
}
