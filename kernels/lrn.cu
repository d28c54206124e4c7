// Local response normalization across channels, PyTorch's convention.  Must match
// minialex/backend/numpy_ref.py: lrn_forward(), lrn_backward().
//
//   scale[n,c,l] = k + alpha/size * sum_{j=c-size/2}^{c+(size-1)/2} x[n,j,l]^2      (zero outside [0, C))
//   y = x * scale^-beta
//   gx[i] = gy[i] * scale[i]^-beta - 2*alpha*beta/size * x[i] * sum_{c=i-(size-1)/2}^{i+size/2} gy[c]*y[c]/scale[c]
//
// Thread mapping: one thread per (n, l) column, walking the C channels with a running window sum
// (each element read about twice, whatever the size); threads of a warp take consecutive l, so
// every load and store is coalesced.  Arrays are (N, C, L) with L = H*W.

template <typename T>
__global__ void lrn_forward(const T* x, T* y, T* scale, long long N, long long C, long long L,
                            int size, T alpha, T beta, T k) {
    const long long total = N * L;
    const int before = size / 2, after = (size - 1) / 2;
    const T coefficient = alpha / T(size);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long n = i / L, l = i % L;
        const T* xc = x + n * C * L + l;               // x[n, c, l] = xc[c * L]
        T window = T(0);                               // sum of squares over channels [c-before, c+after]
        for (long long j = 0; j < after && j < C; ++j) window += xc[j * L] * xc[j * L];
        for (long long c = 0; c < C; ++c) {
            long long enter = c + after, leave = c - before - 1;
            if (enter < C) window += xc[enter * L] * xc[enter * L];
            if (leave >= 0) window -= xc[leave * L] * xc[leave * L];
            T s = k + coefficient * window;
            long long o = (n * C + c) * L + l;
            scale[o] = s;
            y[o] = x[o] * pow(s, -beta);
        }
    }
}

template <typename T>
__global__ void lrn_backward(const T* x, const T* y, const T* scale, const T* gy, T* gx, long long N,
                             long long C, long long L, int size, T alpha, T beta) {
    const long long total = N * L;
    const int before = (size - 1) / 2, after = size / 2;   // the window mirrored
    const T coefficient = T(2) * alpha * beta / T(size);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long n = i / L, l = i % L, base = n * C * L + l;
        T window = T(0);                               // sum of gy*y/scale over [c-before, c+after]
        for (long long j = 0; j < after && j < C; ++j) window += gy[base + j * L] * y[base + j * L] / scale[base + j * L];
        for (long long c = 0; c < C; ++c) {
            long long enter = c + after, leave = c - before - 1;
            if (enter < C) window += gy[base + enter * L] * y[base + enter * L] / scale[base + enter * L];
            if (leave >= 0) window -= gy[base + leave * L] * y[base + leave * L] / scale[base + leave * L];
            long long o = base + c * L;
            gx[o] = gy[o] * pow(scale[o], -beta) - coefficient * x[o] * window;
        }
    }
}
