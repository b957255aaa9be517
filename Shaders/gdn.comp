#version 450
#extension GL_GOOGLE_include_directive : require
// GDN / IGDN (GDNLayer): y[i] = x[i] / sqrt(beta[i] + sum_j gamma[i][j] x[j]^2), or x[i] * sqrt(..).
// A 1x1 convolution of x^2 followed by an elementwise op. Each invocation computes CB
// channels x PXG consecutive pixels, so every x[j] fetched (and squared) feeds CB
// accumulators; gamma is packed [block][j][CB] (zero-padded) and fetched four channels per
// texel. Pushed: inC = channels, inH/inW = plane, biasOffset = beta.
#include "common.glsl"

layout(constant_id = 3) const int CB = 16;
layout(constant_id = 4) const int PXG = 2;
layout(constant_id = 5) const bool INVERSE = false;
// Quad fetches of x: the plane size and view offset are multiples of 4 and so is PXG.
layout(constant_id = 11) const bool VEC_INPUT = false;

void main() {
    int plane = pc.inH * pc.inW;
    int pix0 = int(gl_GlobalInvocationID.x) * PXG;
    int block = int(gl_WorkGroupID.z);
    // No early return past the end of the plane (see conv.glsl): clamp, skip only the stores.

    float acc[CB][PXG];
    [[unroll]] for (int o = 0; o < CB; o++) {
        float b = params[pc.biasOffset + block * CB + o];
        [[unroll]] for (int p = 0; p < PXG; p++) acc[o][p] = b;
    }
    int gBase = block * pc.inC * CB;
    for (int j = 0; j < pc.inC; j++) {
        float sq[PXG];
        int base = pc.inOffset + j * plane;
        if (VEC_INPUT) {
            int lastQuad = ((base + plane) >> 2) - 1;
            [[unroll]] for (int q = 0; q < PXG / 4; q++) {
                vec4 t = texelFetch(srcQuads, min(((base + pix0) >> 2) + q, lastQuad));
                sq[q * 4 + 0] = t.x * t.x;
                sq[q * 4 + 1] = t.y * t.y;
                sq[q * 4 + 2] = t.z * t.z;
                sq[q * 4 + 3] = t.w * t.w;
            }
        } else {
            [[unroll]] for (int p = 0; p < PXG; p++) {
                float v = loadInput(base + min(pix0 + p, plane - 1));
                sq[p] = v * v;
            }
        }
        [[unroll]] for (int c4 = 0; c4 < CB / 4; c4++) {
            vec4 g = texelFetch(paramTexels, (gBase + j * CB) / 4 + c4);
            [[unroll]] for (int p = 0; p < PXG; p++) {
                acc[c4 * 4 + 0][p] += g.x * sq[p];
                acc[c4 * 4 + 1][p] += g.y * sq[p];
                acc[c4 * 4 + 2][p] += g.z * sq[p];
                acc[c4 * 4 + 3][p] += g.w * sq[p];
            }
        }
    }
    [[unroll]] for (int o = 0; o < CB; o++) {
        int c = block * CB + o;
        if (c < pc.inC) {
            [[unroll]] for (int p = 0; p < PXG; p++) {
                if (pix0 + p < plane) {
                    float x = loadInput(pc.inOffset + c * plane + pix0 + p);
                    dst[pc.outOffset + c * plane + pix0 + p] = INVERSE ? x * sqrt(acc[o][p]) : x / sqrt(acc[o][p]);
                }
            }
        }
    }
}
