// SGD update.  Must match minialex/backend/numpy_ref.py: sgd_update().
//   d = g + weight_decay * p;   v = momentum * v + d;   p -= lr * (nesterov ? d + momentum * v : v)
// Without momentum (has_momentum 0) v is not touched and p -= lr * d.
// Thread mapping: one thread per element, grid-stride loop.

template <typename T>
__global__ void sgd_update(T* p, const T* g, T* v, T lr, T momentum, T weight_decay, int has_momentum,
                           int nesterov, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        T d = weight_decay != T(0) ? g[i] + weight_decay * p[i] : g[i];
        T step = d;
        if (has_momentum) {
            v[i] = momentum * v[i] + d;
            step = nesterov ? d + momentum * v[i] : v[i];
        }
        p[i] -= lr * step;
    }
}
