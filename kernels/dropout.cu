// Dropout with a counter-based generator.  Must match minialex/backend/numpy_ref.py:
// philox_uint32(), dropout_mask(), dropout_apply() -- bit for bit.
//
//   r = first word of Philox-4x32-10(counter = (offset + i) as two 32-bit words, 0, 0; key = seed)
//   mask[i] = (r >> 8) >= threshold,   threshold = floor(p * 2^24)        (1 = keep)
//   y = x * mask * scale,  scale = 1 / (1 - p)   (backward: the same with x = gy)
//
// Thread mapping: one thread per element, grid-stride loop; element i depends on (seed, i) only.

__device__ inline unsigned int philox_first_word(unsigned long long counter, unsigned int k0, unsigned int k1) {
    unsigned int c0 = (unsigned int)counter, c1 = (unsigned int)(counter >> 32), c2 = 0u, c3 = 0u;
    for (int round = 0; round < 10; ++round) {
        unsigned long long p0 = (unsigned long long)0xD2511F53u * c0;   // 32 x 32 -> 64 bits
        unsigned long long p1 = (unsigned long long)0xCD9E8D57u * c2;
        unsigned int n0 = (unsigned int)(p1 >> 32) ^ c1 ^ k0;
        unsigned int n1 = (unsigned int)p1;
        unsigned int n2 = (unsigned int)(p0 >> 32) ^ c3 ^ k1;
        unsigned int n3 = (unsigned int)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;                                          // key schedule (Weyl sequence)
        k1 += 0xBB67AE85u;
    }
    return c0;
}

__global__ void dropout_mask(unsigned char* mask, unsigned long long seed, unsigned long long offset,
                             unsigned int threshold, long long n) {
    const unsigned int k0 = (unsigned int)seed, k1 = (unsigned int)(seed >> 32);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        mask[i] = (philox_first_word(offset + (unsigned long long)i, k0, k1) >> 8) >= threshold;
}

template <typename T>
__global__ void dropout_apply(const T* x, const unsigned char* mask, T scale, T* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        y[i] = x[i] * T(mask[i]) * scale;   // as written, so inf * 0 = NaN as in NumPy
}
