/* dwconv_isa.h: the depthwise conv's loops for one instruction set.
 *
 * src/ops/dwconv.c includes this file once per instruction set, with
 *   DW_SUFFIX  the name suffix (avx512, avx2, scalar),
 *   DW_ATTR    the function attribute that enables it (target("...")),
 *   DW_VW      the vector width in floats (16, 8, 1).
 * Every output is a sum over taps, or over pixels, in exactly the order of
 * the scalar loops (and C11 keeps -ffp-contract=off, so no FMA): all three
 * instruction sets give bit-identical results, on any thread count.
 * Accumulators live in registers: the forward and input-gradient sum a
 * pixel's taps in UNR vectors of channels at once; the weight gradient keeps
 * a whole KxK tile of one channel vector in registers while it walks the
 * pixels (K = 3 and 5, EfficientNet's; other K take the scalar tile). */
#define DW_CAT2(a, b) a##_##b
#define DW_CAT(a, b) DW_CAT2(a, b)
#define DW_NAME(f) DW_CAT(f, DW_SUFFIX)

#if DW_VW > 1
typedef float DW_NAME(vf) __attribute__((vector_size(DW_VW * sizeof(float))));
#else
typedef float DW_NAME(vf);
#endif
#define VF DW_NAME(vf)
#define VLOAD(v, p) memcpy(&(v), (p), sizeof(VF))
#define VSTORE(p, v) memcpy((p), &(v), sizeof(VF))

/* One pixel's channels: out[c] = sum over the nt taps of src[t][c] * wt[t][c].
 * UNR channel vectors at a time, then single vectors, then scalars. */
static DW_ATTR void DW_NAME(dw_taps)(float *restrict out, const float *const *src, const float *const *wt,
                                     int nt, int C) {
    enum { UNR = 4 };
    int c = 0;
    for (; c + UNR * DW_VW <= C; c += UNR * DW_VW) {
        VF a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int t = 0; t < nt; t++) {
            const float *x = src[t] + c, *w = wt[t] + c;
            VF x0, x1, x2, x3, w0, w1, w2, w3;
            VLOAD(x0, x); VLOAD(x1, x + DW_VW); VLOAD(x2, x + 2 * DW_VW); VLOAD(x3, x + 3 * DW_VW);
            VLOAD(w0, w); VLOAD(w1, w + DW_VW); VLOAD(w2, w + 2 * DW_VW); VLOAD(w3, w + 3 * DW_VW);
            a0 = a0 + x0 * w0; a1 = a1 + x1 * w1; a2 = a2 + x2 * w2; a3 = a3 + x3 * w3;
        }
        VSTORE(out + c, a0); VSTORE(out + c + DW_VW, a1);
        VSTORE(out + c + 2 * DW_VW, a2); VSTORE(out + c + 3 * DW_VW, a3);
    }
    for (; c + DW_VW <= C; c += DW_VW) {
        VF a = {0};
        for (int t = 0; t < nt; t++) {
            VF x, w;
            VLOAD(x, src[t] + c); VLOAD(w, wt[t] + c);
            a = a + x * w;
        }
        VSTORE(out + c, a);
    }
    for (; c < C; c++) {
        float a = 0.0f;
        for (int t = 0; t < nt; t++) a += src[t][c] * wt[t][c];
        out[c] = a;
    }
}

/* BN statistics of one output pixel, as batchnorm_forward_train_cpu's
 * statistics pass adds them: s[c] += x, ss[c] += x*x in double. */
static DW_ATTR void DW_NAME(dw_sums)(double *restrict s, double *restrict ss, const float *restrict x, int C) {
    for (int c = 0; c < C; c++) {
        const double v = x[c];
        s[c] += v;
        ss[c] += v * v;
    }
}

/* Forward: out[n][oh][ow][c] = sum over valid (kh, kw) of in * w. The
 * output pixels are split into nchunks(M) fixed chunks, each walked in
 * order; with work given, chunk k also leaves the BN statistics of its
 * pixels in work (sums at 2kC, sums of squares at (2k+1)C): the producer's
 * pass does the statistics pass of batchnorm_forward_train_cpu, bit for bit. */
static DW_ATTR void DW_NAME(dw_forward)(float *restrict out, double *restrict work, const float *restrict in,
                                        const float *restrict w, int N, int H, int W, int C, int K, int stride) {
    const int pad = K / 2;
    const int Ho = conv_out_size(H, K, stride, pad), Wo = conv_out_size(W, K, stride, pad);
    const int M = N * Ho * Wo, nch = dw_nchunks(M);
    #pragma omp parallel for schedule(static)
    for (int k = 0; k < nch; k++) {
        const float *src[DW_MAXK * DW_MAXK], *wt[DW_MAXK * DW_MAXK];
        double *s = work ? work + (size_t)2 * k * C : NULL, *ss = s ? s + C : NULL;
        if (s) memset(s, 0, sizeof(double) * 2 * (size_t)C);
        const int m0 = (int)((long)M * k / nch), m1 = (int)((long)M * (k + 1) / nch);
        for (int m = m0; m < m1; m++) {
            const int n = m / (Ho * Wo), oh = m / Wo % Ho, ow = m % Wo;
            const int nt = dw_forward_taps(src, wt, in, w, n, oh * stride - pad, ow * stride - pad, H, W, C, K);
            float *op = out + (size_t)m * C;
            DW_NAME(dw_taps)(op, src, wt, nt, C);
            if (s) DW_NAME(dw_sums)(s, ss, op, C);
        }
    }
}

/* Input gradient, in gather form: din[pixel] sums the outputs it fed, in
 * (kh, kw) order; no write races. */
static DW_ATTR void DW_NAME(dw_backward_input)(float *restrict din, const float *restrict dout,
                                               const float *restrict w, int N, int H, int W, int C, int K,
                                               int stride) {
    const int pad = K / 2;
    const int Ho = conv_out_size(H, K, stride, pad), Wo = conv_out_size(W, K, stride, pad);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int ih = 0; ih < H; ih++) {
            const float *src[DW_MAXK * DW_MAXK], *wt[DW_MAXK * DW_MAXK];
            for (int iw = 0; iw < W; iw++) {
                int nt = 0;
                for (int kh = 0; kh < K; kh++) {
                    const int t = ih + pad - kh;
                    if (t < 0 || t % stride || t / stride >= Ho) continue;
                    for (int kw = 0; kw < K; kw++) {
                        const int u = iw + pad - kw;
                        if (u < 0 || u % stride || u / stride >= Wo) continue;
                        src[nt] = dout + ((size_t)(n * Ho + t / stride) * Wo + u / stride) * C;
                        wt[nt++] = w + (size_t)(kh * K + kw) * C;
                    }
                }
                DW_NAME(dw_taps)(din + ((size_t)(n * H + ih) * W + iw) * C, src, wt, nt, C);
            }
        }
}

/* Weight gradient of channels [c0, c0 + DW_VW), K known at compile time
 * once inlined: acc[kh*K+kw] += dout[pixel] * in[tap], pixels in (n, oh, ow)
 * order, then dw += acc. */
static inline __attribute__((always_inline)) DW_ATTR void DW_NAME(dw_wgrad_tile)(
    float *restrict dw, const float *restrict dout, const float *restrict in, int N, int H, int W, int C,
    const int K, int stride, int c0) {
    const int pad = K / 2;
    const int Ho = conv_out_size(H, K, stride, pad), Wo = conv_out_size(W, K, stride, pad);
    VF acc[DW_MAXK * DW_MAXK];
    #pragma GCC unroll 49
    for (int t = 0; t < K * K; t++) acc[t] = (VF){0};
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < Ho; oh++) {
            const int ih0 = oh * stride - pad;
            for (int ow = 0; ow < Wo; ow++) {
                const int iw0 = ow * stride - pad;
                VF g;
                VLOAD(g, dout + ((size_t)(n * Ho + oh) * Wo + ow) * C + c0);
                #pragma GCC unroll 7
                for (int kh = 0; kh < K; kh++) {
                    if (ih0 + kh < 0 || ih0 + kh >= H) continue;
                    #pragma GCC unroll 7
                    for (int kw = 0; kw < K; kw++) {
                        if (iw0 + kw < 0 || iw0 + kw >= W) continue;
                        VF x;
                        VLOAD(x, in + ((size_t)(n * H + ih0 + kh) * W + iw0 + kw) * C + c0);
                        acc[kh * K + kw] = acc[kh * K + kw] + g * x;
                    }
                }
            }
        }
    #pragma GCC unroll 49
    for (int t = 0; t < K * K; t++) {
        VF d;
        VLOAD(d, dw + (size_t)t * C + c0);
        d = d + acc[t];
        VSTORE(dw + (size_t)t * C + c0, d);
    }
}

/* Weight gradient: one channel vector per task (dynamic schedule), so each
 * weight is summed by one thread in a fixed order. Channels past the last
 * full vector, and K other than 3 and 5, take the scalar tile. */
static DW_ATTR void DW_NAME(dw_backward_weight)(float *restrict dw, const float *restrict dout,
                                                const float *restrict in, int N, int H, int W, int C, int K,
                                                int stride) {
    const int nvec = (K == 3 || K == 5) ? C / DW_VW : 0;
    const int ntail = C - nvec * DW_VW;
    #pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < nvec + ntail; b++) {
        if (b >= nvec)
            dw_wgrad_scalar(dw, dout, in, N, H, W, C, K, stride, nvec * DW_VW + (b - nvec));
        else if (K == 3)
            DW_NAME(dw_wgrad_tile)(dw, dout, in, N, H, W, C, 3, stride, b * DW_VW);
        else
            DW_NAME(dw_wgrad_tile)(dw, dout, in, N, H, W, C, 5, stride, b * DW_VW);
    }
}

#undef VF
#undef VLOAD
#undef VSTORE
#undef DW_NAME
#undef DW_CAT
#undef DW_CAT2
