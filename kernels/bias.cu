// Bias add and bias gradient over the channel axis of (N, C, L) arrays.  Must match
// minialex/backend/numpy_ref.py: bias_add(), bias_grad().
//
//   bias_add:  y[n,c,l] += b[c]
//   bias_grad: gb[c] = sum over n, l of gy[n,c,l]
//
// Thread mapping.  bias_add: one thread per element.  bias_grad: one block per channel (grid-stride
// over channels); its threads stride over the N*L terms, then a tree reduction in shared memory
// (blockDim must be a power of two, at most 1024).  No atomics: the sum order is fixed.

template <typename T>
__global__ void bias_add(T* y, const T* b, long long N, long long C, long long L) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < N * C * L; i += (long long)blockDim.x * gridDim.x)
        y[i] += b[(i / L) % C];
}

template <typename T>
__global__ void bias_grad(const T* gy, T* gb, long long N, long long C, long long L) {
    __shared__ T partial[1024];
    for (long long c = blockIdx.x; c < C; c += gridDim.x) {
        T sum = T(0);
        for (long long t = threadIdx.x; t < N * L; t += blockDim.x) {
            long long n = t / L, l = t % L;
            sum += gy[(n * C + c) * L + l];
        }
        partial[threadIdx.x] = sum;
        __syncthreads();
        for (unsigned int half = blockDim.x / 2; half > 0; half /= 2) {
            if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0) gb[c] = partial[0];
        __syncthreads();
    }
}
