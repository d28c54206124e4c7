// im2col and col2im: convolution as a matrix product.  Must match minialex/backend/numpy_ref.py:
// im2col() and col2im().
//
//   cols[(c*KH + kh)*KW + kw, (n*OH + oh)*OW + ow] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]
//   (zero where the tap falls in the padding);  cols is (C*KH*KW, N*OH*OW).
//   col2im is its transpose: gx[n, c, h, w] = sum of every cols entry that was copied from x[n, c, h, w].
//
// Thread mapping.  im2col: one thread per cols element, ow fastest, so a warp writes consecutive
// addresses.  col2im: one thread per gx element (gather form, no atomics): it walks the kernel taps
// (kh, kw) and adds the cols entries of the output pixels whose window put it at that tap.
// Grid-stride loops, 64-bit indices.

template <typename T>
__global__ void im2col(const T* x, T* cols, long long N, long long C, long long H, long long W,
                       long long KH, long long KW, long long SH, long long SW, long long PH,
                       long long PW, long long DH, long long DW, long long OH, long long OW) {
    const long long total = C * KH * KW * N * OH * OW;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long ow = i % OW, rest = i / OW;
        long long oh = rest % OH; rest /= OH;
        long long n = rest % N;   rest /= N;
        long long kw = rest % KW; rest /= KW;
        long long kh = rest % KH;
        long long c = rest / KH;
        long long h = oh * SH - PH + kh * DH;
        long long w = ow * SW - PW + kw * DW;
        cols[i] = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * C + c) * H + h) * W + w] : T(0);
    }
}

template <typename T>
__global__ void col2im(const T* cols, T* gx, long long N, long long C, long long H, long long W,
                       long long KH, long long KW, long long SH, long long SW, long long PH,
                       long long PW, long long DH, long long DW, long long OH, long long OW) {
    const long long total = N * C * H * W;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long w = i % W, rest = i / W;
        long long h = rest % H; rest /= H;
        long long c = rest % C;
        long long n = rest / C;
        T sum = T(0);
        for (long long kh = 0; kh < KH; ++kh) {
            long long t = h + PH - kh * DH;          // = oh * SH for the window that has x here at tap kh
            if (t < 0 || t % SH != 0 || t / SH >= OH) continue;
            long long oh = t / SH;
            for (long long kw = 0; kw < KW; ++kw) {
                long long u = w + PW - kw * DW;
                if (u < 0 || u % SW != 0 || u / SW >= OW) continue;
                long long ow = u / SW;
                long long row = (c * KH + kh) * KW + kw;
                sum += cols[row * (N * OH * OW) + (n * OH + oh) * OW + ow];
            }
        }
        gx[i] = sum;
    }
}
