// Direct convolution, register blocked: each invocation computes OCB output channels x PX
// consecutive output pixels of one row. The input row segment a block needs is loaded once
// per (input channel, kernel row) and reused by every tap and output channel, and the
// weights of a block are packed [block][ci][ky][kx][OCB] so that the OCB weights of one tap
// are adjacent: OCB/4 four-component texel fetches (OCB is a multiple of 4).
// Weights of the last block are zero-padded, so no channel bounds checks are needed in the loop.
#include "common.glsl"

layout(constant_id = 3) const int K = 5;     // kernel size
layout(constant_id = 4) const int S = 2;     // stride
layout(constant_id = 5) const int P = 2;     // padding
layout(constant_id = 6) const int OCB = 8;   // output channels per invocation
layout(constant_id = 7) const int PX = 4;    // output pixels per invocation

void main() {
    const int WIN = (PX - 1) * S + K;
    int ox0 = int(gl_GlobalInvocationID.x) * PX;
    int oyOut = int(gl_GlobalInvocationID.y);
    // No early return past the edge: invocations there compute a clamped row and skip only
    // the stores, so control flow stays uniform around the loads.
    int oy = min(oyOut, pc.outH - 1);
    int block = int(gl_WorkGroupID.z);

    SCALAR acc[OCB][PX];
    [[unroll]] for (int o = 0; o < OCB; o++) {
        SCALAR b = params[pc.biasOffset + block * OCB + o];
        [[unroll]] for (int p = 0; p < PX; p++) acc[o][p] = b;
    }

    int ix0 = ox0 * S - P;
    int plane = pc.inH * pc.inW;
    int wBase = block * pc.inC * K * K * OCB;
    for (int ci = 0; ci < pc.inC; ci++) {
        for (int ky = 0; ky < K; ky++) {
            int iy = oy * S - P + ky;
            bool rowValid = iy >= 0 && iy < pc.inH;
            int rowBase = pc.inOffset + ci * plane + clamp(iy, 0, pc.inH - 1) * pc.inW;
            int wRow = wBase + (ci * K + ky) * K * OCB;
            SCALAR win[WIN];
            [[unroll]] for (int j = 0; j < WIN; j++) {
                int ix = ix0 + j;
                // Load from a clamped address and select, rather than branch: zero padding
                // must not make lanes diverge.
                SCALAR v = loadInput(rowBase + clamp(ix, 0, pc.inW - 1));
                win[j] = (rowValid && ix >= 0 && ix < pc.inW) ? v : ZERO;
            }
            [[unroll]] for (int kx = 0; kx < K; kx++) {
                [[unroll]] for (int o4 = 0; o4 < OCB / 4; o4++) {
                    PARAM4 w = texelFetch(paramTexels, (wRow + kx * OCB) / 4 + o4);
                    [[unroll]] for (int p = 0; p < PX; p++) {
                        SCALAR v = win[p * S + kx];
                        acc[o4 * 4 + 0][p] += w.x * v;
                        acc[o4 * 4 + 1][p] += w.y * v;
                        acc[o4 * 4 + 2][p] += w.z * v;
                        acc[o4 * 4 + 3][p] += w.w * v;
                    }
                }
            }
        }
    }

    [[unroll]] for (int o = 0; o < OCB; o++) {
        int oc = block * OCB + o;
        if (oc < pc.outC && oyOut < pc.outH) {
            int rowBase = pc.outOffset + (oc * pc.outH + oy) * pc.outW;
            [[unroll]] for (int p = 0; p < PX; p++) {
                if (ox0 + p < pc.outW) dst[rowBase + ox0 + p] = FINISH(acc[o][p], oc);
            }
        }
    }
}
