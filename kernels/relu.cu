// ReLU.  Must match minialex/backend/numpy_ref.py: relu_forward(), relu_backward().
//   y = max(x, 0) (NaN propagates);   gx = gy where y > 0, else 0 (0 at x == 0, as PyTorch).
// Thread mapping: one thread per element, grid-stride loop.

template <typename T>
__global__ void relu_forward(const T* x, T* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        y[i] = x[i] <= T(0) ? T(0) : x[i];   // NaN stays NaN, as np.maximum and PyTorch
}

template <typename T>
__global__ void relu_backward(const T* gy, const T* y, T* gx, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        gx[i] = y[i] > T(0) ? gy[i] : T(0);
}
