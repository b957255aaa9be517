// Transposed convolution (PyTorch semantics): input pixel (iy, ix) adds w[ci][co][ky][kx] * x
// to output (iy*S - P + ky, ix*S - P + kx). Computed as a gather per output pixel, split into
// the S*S output phases (oy % S, ox % S) = (RY, RX), one dispatch each: within a phase the set
// of kernel taps that hit is fixed, so it is a specialization constant and the tap loops
// unroll with no per-pixel tests, and no multiply is spent on the zeros a zero-stuffed
// formulation would add. Each invocation computes OCB output channels x PX outputs of one
// phase row (output columns S*q + RX for PX consecutive q), reusing one loaded input row
// segment for all of them. Weights are packed [block][ci][ky][kx][OCB], zero-padded.
#include "common.glsl"

layout(constant_id = 3) const int K = 5;
layout(constant_id = 4) const int S = 2;
layout(constant_id = 5) const int P = 2;
layout(constant_id = 6) const int OCB = 8;
layout(constant_id = 7) const int PX = 4;
layout(constant_id = 8) const int RY = 0;
layout(constant_id = 9) const int RX = 0;

// Input offsets d = (R + P - k) / S of the taps k that hit phase R; the (+ S*K) keeps the
// numerator non-negative so integer division floors.
const int DXLO = (RX + P - (K - 1) + S * K) / S - K;
const int DXHI = (RX + P + S * K) / S - K;
const int WIN = PX + DXHI - DXLO;

void main() {
    int qx0 = int(gl_GlobalInvocationID.x) * PX;
    int qy = int(gl_GlobalInvocationID.y);
    int block = int(gl_WorkGroupID.z);
    if (qy >= pc.qH || qx0 >= pc.qW) return;

    SCALAR acc[OCB][PX];
    [[unroll]] for (int o = 0; o < OCB; o++) {
        SCALAR b = params[pc.biasOffset + block * OCB + o];
        [[unroll]] for (int p = 0; p < PX; p++) acc[o][p] = b;
    }

    int plane = pc.inH * pc.inW;
    int wBase = block * pc.inC * K * K * OCB;
    for (int ci = 0; ci < pc.inC; ci++) {
        [[unroll]] for (int ky = 0; ky < K; ky++) {
            if ((RY + P - ky + S * K) % S != 0) continue;
            int iy = qy + (RY + P - ky + S * K) / S - K;
            bool rowValid = iy >= 0 && iy < pc.inH;
            int rowBase = pc.inOffset + ci * plane + clamp(iy, 0, pc.inH - 1) * pc.inW;
            int wRow = wBase + (ci * K + ky) * K * OCB;
            SCALAR win[WIN];
            [[unroll]] for (int j = 0; j < WIN; j++) {
                int ix = qx0 + DXLO + j;
                SCALAR v = src[rowBase + clamp(ix, 0, pc.inW - 1)];
                win[j] = (rowValid && ix >= 0 && ix < pc.inW) ? v : ZERO;
            }
            [[unroll]] for (int kx = 0; kx < K; kx++) {
                if ((RX + P - kx + S * K) % S != 0) continue;
                const int d = (RX + P - kx + S * K) / S - K - DXLO;
                [[unroll]] for (int o = 0; o < OCB; o++) {
                    SCALAR w = params[wRow + kx * OCB + o];
                    [[unroll]] for (int p = 0; p < PX; p++) acc[o][p] += w * win[p + d];
                }
            }
        }
    }

    int oy = qy * S + RY;
    [[unroll]] for (int o = 0; o < OCB; o++) {
        int oc = block * OCB + o;
        if (oc < pc.outC && oy < pc.outH) {
            int rowBase = pc.outOffset + (oc * pc.outH + oy) * pc.outW;
            [[unroll]] for (int p = 0; p < PX; p++) {
                int ox = (qx0 + p) * S + RX;
                if (ox < pc.outW) dst[rowBase + ox] = FINISH(acc[o][p], oc);
            }
        }
    }
}
