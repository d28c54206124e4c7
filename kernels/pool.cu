// Max pooling and average pooling, NCHW.  Must match minialex/backend/numpy_ref.py:
// maxpool2d_forward(), maxpool2d_backward(), avgpool2d_forward(), avgpool2d_backward().
//
//   max:  y[n,c,oh,ow] = max over the window of x;  argmax = h*W + w of the first maximum in
//         row-major window order (a NaN wins, the last NaN if several); padding never wins.
//   avg:  y = sum over the window / divisor, the divisor counted as PyTorch counts it
//         (count_include_pad: padding counts, the part of a ceil_mode window beyond it does not).
//
// Thread mapping.  Forward: one thread per output element.  Backward (gather form, no atomics):
// one thread per input element, which visits the few windows that contain it: max-pool adds gy
// where that window's argmax is this element, avg-pool adds gy / divisor.

template <typename T> __device__ T negative_infinity();
template <> __device__ float negative_infinity<float>() { return __int_as_float(0xff800000); }
template <> __device__ double negative_infinity<double>() { return __longlong_as_double(0xfff0000000000000ULL); }

template <typename T>
__global__ void maxpool2d_forward(const T* x, T* y, int* argmax, long long N, long long C, long long H,
                                  long long W, long long KH, long long KW, long long SH, long long SW,
                                  long long PH, long long PW, long long DH, long long DW, long long OH,
                                  long long OW) {
    const long long total = N * C * OH * OW;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long ow = i % OW, rest = i / OW;
        long long oh = rest % OH;
        long long plane = rest / OH;                  // n*C + c
        const T* xp = x + plane * H * W;
        T best = negative_infinity<T>();
        long long best_index = -1;                    // -1 until the first tap inside the input
        for (long long kh = 0; kh < KH; ++kh) {
            long long h = oh * SH - PH + kh * DH;
            if (h < 0 || h >= H) continue;
            for (long long kw = 0; kw < KW; ++kw) {
                long long w = ow * SW - PW + kw * DW;
                if (w < 0 || w >= W) continue;
                T v = xp[h * W + w];
                if (best_index < 0 || v > best || v != v) {  // strict '>': the first maximum stays; NaN wins
                    best = v;
                    best_index = h * W + w;
                }
            }
        }
        y[i] = best;
        argmax[i] = (int)best_index;
    }
}

// The range of output rows oh whose window (start oh*S - P, taps 0..K-1 spaced D) can hold row h.
__device__ inline void covering(long long h, long long K, long long S, long long P, long long D,
                                long long O, long long* lo, long long* hi) {
    long long top = h + P;                              // h in padded coordinates
    long long a = top - (K - 1) * D;                    // smallest window start that reaches h
    *lo = a <= 0 ? 0 : (a + S - 1) / S;
    *hi = top / S < O - 1 ? top / S : O - 1;
}

template <typename T>
__global__ void maxpool2d_backward(const T* gy, const int* argmax, T* gx, long long N, long long C,
                                   long long H, long long W, long long KH, long long KW, long long SH,
                                   long long SW, long long PH, long long PW, long long DH, long long DW,
                                   long long OH, long long OW) {
    const long long total = N * C * H * W;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long w = i % W, rest = i / W;
        long long h = rest % H;
        long long plane = rest / H;
        long long oh_lo, oh_hi, ow_lo, ow_hi;
        covering(h, KH, SH, PH, DH, OH, &oh_lo, &oh_hi);
        covering(w, KW, SW, PW, DW, OW, &ow_lo, &ow_hi);
        T sum = T(0);
        const int me = (int)(h * W + w);
        for (long long oh = oh_lo; oh <= oh_hi; ++oh)
            for (long long ow = ow_lo; ow <= ow_hi; ++ow) {
                long long o = (plane * OH + oh) * OW + ow;
                if (argmax[o] == me) sum += gy[o];
            }
        gx[i] = sum;
    }
}

// Number of elements a window averages along one axis (see numpy_ref._avgpool_divisor).
__device__ inline long long window_count(long long o, long long K, long long S, long long P, long long size,
                                         bool count_include_pad) {
    long long start = o * S - P;
    long long end = start + K < size + P ? start + K : size + P;
    if (count_include_pad) return end - start;
    long long a = start > 0 ? start : 0, b = end < size ? end : size;
    return b - a;
}

template <typename T>
__global__ void avgpool2d_forward(const T* x, T* y, long long N, long long C, long long H, long long W,
                                  long long KH, long long KW, long long SH, long long SW, long long PH,
                                  long long PW, int count_include_pad, long long OH, long long OW) {
    const long long total = N * C * OH * OW;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long ow = i % OW, rest = i / OW;
        long long oh = rest % OH;
        long long plane = rest / OH;
        const T* xp = x + plane * H * W;
        T sum = T(0);
        for (long long kh = 0; kh < KH; ++kh) {
            long long h = oh * SH - PH + kh;
            if (h < 0 || h >= H) continue;
            for (long long kw = 0; kw < KW; ++kw) {
                long long w = ow * SW - PW + kw;
                if (w >= 0 && w < W) sum += xp[h * W + w];
            }
        }
        T divisor = T(window_count(oh, KH, SH, PH, H, count_include_pad) *
                      window_count(ow, KW, SW, PW, W, count_include_pad));
        y[i] = sum / divisor;
    }
}

template <typename T>
__global__ void avgpool2d_backward(const T* gy, T* gx, long long N, long long C, long long H, long long W,
                                   long long KH, long long KW, long long SH, long long SW, long long PH,
                                   long long PW, int count_include_pad, long long OH, long long OW) {
    const long long total = N * C * H * W;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long w = i % W, rest = i / W;
        long long h = rest % H;
        long long plane = rest / H;
        long long oh_lo, oh_hi, ow_lo, ow_hi;
        covering(h, KH, SH, PH, 1, OH, &oh_lo, &oh_hi);
        covering(w, KW, SW, PW, 1, OW, &ow_lo, &ow_hi);
        T sum = T(0);
        for (long long oh = oh_lo; oh <= oh_hi; ++oh)
            for (long long ow = ow_lo; ow <= ow_hi; ++ow) {
                T divisor = T(window_count(oh, KH, SH, PH, H, count_include_pad) *
                              window_count(ow, KW, SW, PW, W, count_include_pad));
                sum += gy[(plane * OH + oh) * OW + ow] / divisor;
            }
        gx[i] = sum;
    }
}
