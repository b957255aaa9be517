// Input windows of the convolution kernels. For each output row it computes, a conv kernel
// reads one input row segment (its window) starting at column ix0; rows and columns outside
// the tensor read zero (padding). Fetches are clamped into the row, so no invocation reads
// out of bounds and control flow stays uniform around them.
//
// The including kernel declares `VEC_INPUT` (constant_id 11): set when rows start on 4-element
// boundaries and every invocation's window starts at the same component SHIFT of a quad, so
// the window arrives in quads through `srcQuads` instead of element by element.

// Element offset of input row iy of channel ci (clamped into the plane).
int inputRowBase(int ci, int iy) {
    return pc.inOffset + ci * pc.inH * pc.inW + clamp(iy, 0, pc.inH - 1) * pc.inW;
}

// Quad q of the window starting at column ix0 of the row at rowBase, whose first element is
// component `shift` of its quad: window elements j = 4q + c - shift, zero outside the tensor.
PARAM4 windowQuad(int rowBase, bool rowValid, int ix0, int shift, int q) {
    int qLo = rowBase >> 2, qHi = ((rowBase + pc.inW) >> 2) - 1;
    PARAM4 t = texelFetch(srcQuads, clamp(((rowBase + ix0 - shift) >> 2) + q, qLo, qHi));
    [[unroll]] for (int c = 0; c < 4; c++) {
        int ix = ix0 + q * 4 + c - shift;
        if (!(rowValid && ix >= 0 && ix < pc.inW)) t[c] = ZERO;
    }
    return t;
}

// Element ix of the row at rowBase, zero outside the tensor. Fetched from a clamped address
// and selected rather than branched on: zero padding must not make lanes diverge.
SCALAR windowElement(int rowBase, bool rowValid, int ix) {
    SCALAR v = loadInput(rowBase + clamp(ix, 0, pc.inW - 1));
    return (rowValid && ix >= 0 && ix < pc.inW) ? v : ZERO;
}

// DST[j] = element ix0 + j of input row iy of channel ci, for j < WIN_ (zero outside the
// tensor); SHIFT_ as for windowQuad. A macro: GLSL cannot pass arrays sized by
// specialization constants to functions.
#define LOAD_WINDOW(DST, ci, iy, ix0, WIN_, SHIFT_) {                                           \
    int rowBase_ = inputRowBase(ci, iy);                                                        \
    bool rowValid_ = (iy) >= 0 && (iy) < pc.inH;                                                \
    if (VEC_INPUT) {                                                                            \
        [[unroll]] for (int q_ = 0; q_ < ((SHIFT_) + (WIN_) + 3) / 4; q_++) {                   \
            PARAM4 t_ = windowQuad(rowBase_, rowValid_, ix0, SHIFT_, q_);                       \
            [[unroll]] for (int c_ = 0; c_ < 4; c_++) {                                         \
                int j_ = q_ * 4 + c_ - (SHIFT_);                                                \
                if (j_ >= 0 && j_ < (WIN_)) DST[j_] = t_[c_];                                   \
            }                                                                                   \
        }                                                                                       \
    } else {                                                                                    \
        [[unroll]] for (int j_ = 0; j_ < (WIN_); j_++) DST[j_] = windowElement(rowBase_, rowValid_, (ix0) + j_); \
    }                                                                                           \
}
