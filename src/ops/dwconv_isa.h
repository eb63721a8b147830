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

/* DW_R neighbouring output pixels of one row whose taps all lie inside the
 * image, channels [c, c + DW_VW): each input column is loaded once and fed
 * to every accumulator it reaches, each weight once per row of taps (the
 * per-pixel path loads both for every tap). x points at input (ih0, iw0) of
 * the first pixel, out at its output. K and S are constants once inlined;
 * each output still adds its taps in (kh, kw) order. */
static inline __attribute__((always_inline)) DW_ATTR void DW_NAME(dw_fwd_block)(
    float *restrict out, const float *restrict x, const float *restrict w, int W, int C, const int K, const int S,
    int c) {
    VF a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    #pragma GCC unroll 7
    for (int kh = 0; kh < K; kh++) {
        const float *xr = x + (size_t)kh * W * C + c;
        #pragma GCC unroll 7
        for (int kw = 0; kw < K; kw++) {
            VF wv, x0, x1, x2, x3;
            VLOAD(wv, w + (size_t)(kh * K + kw) * C + c);
            VLOAD(x0, xr + (size_t)kw * C);
            VLOAD(x1, xr + (size_t)(S + kw) * C);
            VLOAD(x2, xr + (size_t)(2 * S + kw) * C);
            VLOAD(x3, xr + (size_t)(3 * S + kw) * C);
            a0 = a0 + x0 * wv; a1 = a1 + x1 * wv; a2 = a2 + x2 * wv; a3 = a3 + x3 * wv;
        }
    }
    VSTORE(out + c, a0); VSTORE(out + C + c, a1); VSTORE(out + 2 * (size_t)C + c, a2); VSTORE(out + 3 * (size_t)C + c, a3);
}

/* The input gradient of DW_R neighbouring input pixels of one row, stride 1,
 * every tap inside the output: din[iw] = sum over (kh, kw) of
 * dout[ih + pad - kh][iw + pad - kw] * w[kh][kw]. g points at dout
 * (ih + pad - K + 1, iw0 + pad - K + 1): column j feeds pixel r through
 * kw = r + K - 1 - j, so walking j downwards keeps (kh, kw) order. */
static inline __attribute__((always_inline)) DW_ATTR void DW_NAME(dw_din_block)(
    float *restrict din, const float *restrict g, const float *restrict w, int Wo, int C, const int K, int c) {
    VF a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    #pragma GCC unroll 7
    for (int kh = 0; kh < K; kh++) {
        const float *gr = g + (size_t)(K - 1 - kh) * Wo * C + c; /* dout row ih + pad - kh */
        #pragma GCC unroll 7
        for (int kw = 0; kw < K; kw++) {
            VF wv, g0, g1, g2, g3;
            VLOAD(wv, w + (size_t)(kh * K + kw) * C + c);
            VLOAD(g0, gr + (size_t)(K - 1 - kw) * C);
            VLOAD(g1, gr + (size_t)(K - kw) * C);
            VLOAD(g2, gr + (size_t)(K + 1 - kw) * C);
            VLOAD(g3, gr + (size_t)(K + 2 - kw) * C);
            a0 = a0 + g0 * wv; a1 = a1 + g1 * wv; a2 = a2 + g2 * wv; a3 = a3 + g3 * wv;
        }
    }
    VSTORE(din + c, a0); VSTORE(din + C + c, a1); VSTORE(din + 2 * (size_t)C + c, a2); VSTORE(din + 3 * (size_t)C + c, a3);
}

/* The channels [cv, C) past the last full vector of a DW_R-pixel block,
 * through the per-pixel taps: tap (kh, kw) of pixel r reads base at row
 * row0 + rs*kh and column cr*r + c0 + cs*kw, rows W floats*C apart. */
static DW_ATTR void DW_NAME(dw_block_tail)(float *restrict out, const float *restrict base, const float *restrict w,
                                           int W, int C, int cv, int K, int row0, int rs, int cr, int c0, int cs) {
    const float *src[DW_MAXK * DW_MAXK], *wt[DW_MAXK * DW_MAXK];
    for (int r = 0; r < DW_R; r++) {
        int nt = 0;
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                src[nt] = base + ((size_t)(row0 + rs * kh) * W + (size_t)(cr * r + c0 + cs * kw)) * C + cv;
                wt[nt++] = w + (size_t)(kh * K + kw) * C + cv;
            }
        DW_NAME(dw_taps)(out + (size_t)r * C + cv, src, wt, nt, C - cv);
    }
}

/* The blocked forward over all full channel vectors, then the channel tail,
 * for K in {3, 5} and S in {1, 2}. */
static DW_ATTR void DW_NAME(dw_fwd_block_all)(float *restrict out, const float *restrict x, const float *restrict w,
                                              int W, int C, int K, int S) {
    const int cv = C - C % DW_VW;
    for (int c = 0; c < cv; c += DW_VW) {
        if (K == 3 && S == 1) DW_NAME(dw_fwd_block)(out, x, w, W, C, 3, 1, c);
        else if (K == 3) DW_NAME(dw_fwd_block)(out, x, w, W, C, 3, 2, c);
        else if (S == 1) DW_NAME(dw_fwd_block)(out, x, w, W, C, 5, 1, c);
        else DW_NAME(dw_fwd_block)(out, x, w, W, C, 5, 2, c);
    }
    if (cv < C) DW_NAME(dw_block_tail)(out, x, w, W, C, cv, K, 0, 1, S, 0, 1); /* row kh, column S*r + kw */
}

static DW_ATTR void DW_NAME(dw_din_block_all)(float *restrict din, const float *restrict g, const float *restrict w,
                                              int Wo, int C, int K) {
    const int cv = C - C % DW_VW;
    for (int c = 0; c < cv; c += DW_VW) {
        if (K == 3) DW_NAME(dw_din_block)(din, g, w, Wo, C, 3, c);
        else DW_NAME(dw_din_block)(din, g, w, Wo, C, 5, c);
    }
    if (cv < C) /* row K-1-kh, column r + K-1-kw */
        DW_NAME(dw_block_tail)(din, g, w, Wo, C, cv, K, K - 1, -1, 1, K - 1, -1);
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
        const int blocked = (K == 3 || K == 5) && (stride == 1 || stride == 2);
        for (int m = m0; m < m1;) {
            const int n = m / (Ho * Wo), oh = m / Wo % Ho, ow = m % Wo;
            const int ih0 = oh * stride - pad, iw0 = ow * stride - pad;
            float *op = out + (size_t)m * C;
            int np = 1;
            if (blocked && m + DW_R <= m1 && ow + DW_R <= Wo && ih0 >= 0 && ih0 + K <= H && iw0 >= 0 &&
                (ow + DW_R - 1) * stride - pad + K <= W) {
                DW_NAME(dw_fwd_block_all)(op, in + ((size_t)(n * H + ih0) * W + iw0) * C, w, W, C, K, stride);
                np = DW_R;
            } else {
                const int nt = dw_forward_taps(src, wt, in, w, n, ih0, iw0, H, W, C, K);
                DW_NAME(dw_taps)(op, src, wt, nt, C);
            }
            for (int p = 0; p < np && s; p++) DW_NAME(dw_sums)(s, ss, op + (size_t)p * C, C);
            m += np;
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
            /* rows whose taps all lie inside the output (stride 1): DW_R pixels at a time */
            const int row_in = stride == 1 && (K == 3 || K == 5) && ih + pad - (K - 1) >= 0 && ih + pad < Ho;
            for (int iw = 0; iw < W;) {
                if (row_in && iw + pad - (K - 1) >= 0 && iw + DW_R - 1 + pad < Wo) {
                    DW_NAME(dw_din_block_all)(din + ((size_t)(n * H + ih) * W + iw) * C,
                                              dout + ((size_t)(n * Ho + ih + pad - (K - 1)) * Wo + iw + pad - (K - 1)) * C,
                                              w, Wo, C, K);
                    iw += DW_R;
                    continue;
                }
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
                iw++;
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
