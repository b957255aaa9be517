// Transposed convolution (PyTorch semantics): input pixel (iy, ix) adds w[ci][co][ky][kx] * x
// to output (iy*S - P + ky, ix*S - P + kx). Computed as a gather per output pixel, split into
// the S*S output phases (oy % S, ox % S) = (RY, RX), one dispatch each: within a phase the set
// of kernel taps that hit is fixed, so it is a specialization constant and the tap loops
// unroll with no per-pixel tests, and no multiply is spent on the zeros a zero-stuffed
// formulation would add. Each invocation computes OCB output channels x PY x PX outputs of
// one phase (output rows S*q + RY, columns S*q + RX for consecutive q), reusing each loaded
// input row segment for all of them. Weights are packed [block][ci][ky][kx][OCB], zero-padded,
// and read as four-component texels.
#include "common.glsl"
#include "window.glsl"

layout(constant_id = 3) const int K = 5;
layout(constant_id = 4) const int S = 2;
layout(constant_id = 5) const int P = 2;
layout(constant_id = 6) const int OCB = 8;
layout(constant_id = 7) const int PX = 4;
layout(constant_id = 8) const int RY = 0;
layout(constant_id = 9) const int RX = 0;
// Quad input fetches: set when rows start on 4-element boundaries and PX is a multiple of 4.
layout(constant_id = 11) const bool VEC_INPUT = false;
layout(constant_id = 12) const int PY = 1;

#include "transposed_phase.glsl"
const int WIN = PX + SPAN;
const int SHIFT = ((DXLO % 4) + 4) % 4;      // (qx0 + DXLO) mod 4 under VEC_INPUT

void main() {
    int qx0 = int(gl_GlobalInvocationID.x) * PX;
    int qy0 = int(gl_GlobalInvocationID.y) * PY;
    int block = int(gl_WorkGroupID.z);
    // No early return past the edge (see conv.glsl): clamp rows, skip only the stores.

    SCALAR acc[OCB][PY][PX];
    [[unroll]] for (int o = 0; o < OCB; o++) {
        SCALAR b = params[pc.biasOffset + block * OCB + o];
        [[unroll]] for (int r = 0; r < PY; r++) {
            [[unroll]] for (int p = 0; p < PX; p++) acc[o][r][p] = b;
        }
    }

    int wBase = block * pc.inC * K * K * OCB;
    int ix0 = qx0 + DXLO;
    for (int ci = 0; ci < pc.inC; ci++) {
        [[unroll]] for (int ky = 0; ky < K; ky++) {
            if ((RY + P - ky + S * K) % S != 0) continue;
            SCALAR win[PY][WIN];
            [[unroll]] for (int r = 0; r < PY; r++) {
                int iy = min(qy0 + r, pc.qH - 1) + (RY + P - ky + S * K) / S - K;
                LOAD_WINDOW(win[r], ci, iy, ix0, WIN, SHIFT);
            }
            int wRow = wBase + (ci * K + ky) * K * OCB;
            [[unroll]] for (int kx = 0; kx < K; kx++) {
                if ((RX + P - kx + S * K) % S != 0) continue;
                const int d = (RX + P - kx + S * K) / S - K - DXLO;
                [[unroll]] for (int o4 = 0; o4 < OCB / 4; o4++) {
                    PARAM4 w = texelFetch(paramTexels, (wRow + kx * OCB) / 4 + o4);
                    [[unroll]] for (int r = 0; r < PY; r++) {
                        [[unroll]] for (int p = 0; p < PX; p++) {
                            SCALAR v = win[r][p + d];
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
            int oy = (qy0 + r) * S + RY;
            if (oc < pc.outC && qy0 + r < pc.qH && oy < pc.outH) {
                int rowBase = pc.outOffset + (oc * pc.outH + oy) * pc.outW;
                [[unroll]] for (int p = 0; p < PX; p++) {
                    int ox = (qx0 + p) * S + RX;
                    if (ox < pc.outW) dst[rowBase + ox] = FINISH(acc[o][r][p], oc);
                }
            }
        }
    }
}
