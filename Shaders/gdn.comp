#version 450
#extension GL_GOOGLE_include_directive : require
// GDN / IGDN (GDNLayer): y[i] = x[i] / sqrt(beta[i] + sum_j gamma[i][j] x[j]^2), or x[i] * sqrt(..).
// A 1x1 convolution of x^2 followed by an elementwise op. Each invocation computes CB
// channels x PXG consecutive pixels, so every x[j] loaded (and squared) feeds CB
// accumulators; gamma is packed [block][j][CB] (zero-padded) and read by broadcast loads.
// Pushed: inC = channels, inH/inW = plane, biasOffset = beta.
#include "common.glsl"

layout(constant_id = 3) const int CB = 16;
layout(constant_id = 4) const int PXG = 2;
layout(constant_id = 5) const bool INVERSE = false;

void main() {
    int plane = pc.inH * pc.inW;
    int pix0 = int(gl_GlobalInvocationID.x) * PXG;
    int block = int(gl_WorkGroupID.z);
    if (pix0 >= plane) return;

    float acc[CB][PXG];
    [[unroll]] for (int o = 0; o < CB; o++) {
        float b = params[pc.biasOffset + block * CB + o];
        [[unroll]] for (int p = 0; p < PXG; p++) acc[o][p] = b;
    }
    int gBase = block * pc.inC * CB;
    for (int j = 0; j < pc.inC; j++) {
        float sq[PXG];
        [[unroll]] for (int p = 0; p < PXG; p++) {
            float v = src[pc.inOffset + j * plane + min(pix0 + p, plane - 1)];
            sq[p] = v * v;
        }
        [[unroll]] for (int o = 0; o < CB; o++) {
            float g = params[gBase + j * CB + o];
            [[unroll]] for (int p = 0; p < PXG; p++) acc[o][p] += g * sq[p];
        }
    }
    [[unroll]] for (int o = 0; o < CB; o++) {
        int c = block * CB + o;
        if (c < pc.inC) {
            [[unroll]] for (int p = 0; p < PXG; p++) {
                if (pix0 + p < plane) {
                    float x = src[pc.inOffset + c * plane + pix0 + p];
                    dst[pc.outOffset + c * plane + pix0 + p] = INVERSE ? x * sqrt(acc[o][p]) : x / sqrt(acc[o][p]);
                }
            }
        }
    }
}
