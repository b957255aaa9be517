// Direct convolution, register blocked: each invocation computes OCB output channels x PY
// output rows x PX consecutive output pixels. Per (input channel, kernel row) the input row
// segments the block needs are loaded once and reused by every tap and output channel, and
// the weights of that kernel row are fetched once for all PY rows. Weights are packed
// [block][ci][ky][kx][OCB] so that the OCB weights of one tap are OCB/4 four-component
// texels; the last block is zero-padded, so the loop needs no channel bounds checks.
#include "common.glsl"
#include "window.glsl"

layout(constant_id = 3) const int K = 5;     // kernel size
layout(constant_id = 4) const int S = 2;     // stride
layout(constant_id = 5) const int P = 2;     // padding
layout(constant_id = 6) const int OCB = 8;   // output channels per invocation
layout(constant_id = 7) const int PX = 4;    // output pixels per invocation along x
// Read the input four elements per fetch. Set only when rows start on a 4-element boundary
// (width and view offset multiples of 4) and S*PX is a multiple of 4, so every
// invocation's window starts at the same offset SHIFT within a quad.
layout(constant_id = 11) const bool VEC_INPUT = false;
layout(constant_id = 12) const int PY = 1;   // output rows per invocation

const int WIN = (PX - 1) * S + K;            // input columns one output row segment needs
const int SHIFT = (4 - P % 4) % 4;           // (ox0 * S - P) mod 4 under VEC_INPUT

void main() {
    int ox0 = int(gl_GlobalInvocationID.x) * PX;
    int oy0 = int(gl_GlobalInvocationID.y) * PY;
    int block = int(gl_WorkGroupID.z);
    // No early return past the edge: invocations there compute clamped rows and skip only
    // the stores, so control flow stays uniform around the fetches.

    SCALAR acc[OCB][PY][PX];
    [[unroll]] for (int o = 0; o < OCB; o++) {
        SCALAR b = params[pc.biasOffset + block * OCB + o];
        [[unroll]] for (int r = 0; r < PY; r++) {
            [[unroll]] for (int p = 0; p < PX; p++) acc[o][r][p] = b;
        }
    }

    int ix0 = ox0 * S - P;
    int wBase = block * pc.inC * K * K * OCB;
    for (int ci = 0; ci < pc.inC; ci++) {
        for (int ky = 0; ky < K; ky++) {
            SCALAR win[PY][WIN];
            [[unroll]] for (int r = 0; r < PY; r++) {
                int iy = min(oy0 + r, pc.outH - 1) * S - P + ky;
                LOAD_WINDOW(win[r], ci, iy, ix0, WIN, SHIFT);
            }
            int wRow = wBase + (ci * K + ky) * K * OCB;
            [[unroll]] for (int kx = 0; kx < K; kx++) {
                [[unroll]] for (int o4 = 0; o4 < OCB / 4; o4++) {
                    PARAM4 w = texelFetch(paramTexels, (wRow + kx * OCB) / 4 + o4);
                    [[unroll]] for (int r = 0; r < PY; r++) {
                        [[unroll]] for (int p = 0; p < PX; p++) {
                            SCALAR v = win[r][p * S + kx];
                            acc[o4 * 4 + 0][r][p] += w.x * v;
                            acc[o4 * 4 + 1][r][p] += w.y * v;
                            acc[o4 * 4 + 2][r][p] += w.z * v;
                            acc[o4 * 4 + 3][r][p] += w.w * v;
                        }
                    }
                }
            }
        }
    }

    [[unroll]] for (int o = 0; o < OCB; o++) {
        int oc = block * OCB + o;
        [[unroll]] for (int r = 0; r < PY; r++) {
            int oy = oy0 + r;
            if (oc < pc.outC && oy < pc.outH) {
                int rowBase = pc.outOffset + (oc * pc.outH + oy) * pc.outW;
                [[unroll]] for (int p = 0; p < PX; p++) {
                    if (ox0 + p < pc.outW) dst[rowBase + ox0 + p] = FINISH(acc[o][r][p], oc);
                }
            }
        }
    }
}
