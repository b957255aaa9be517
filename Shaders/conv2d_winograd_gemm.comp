#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_shuffle : require
// The multiplications of a Winograd convolution (see winograd.glsl): for each of the 36
// transform points, M[point][co][tile] = sum over c of U[point][co][c] V[point][c][tile], a
// matrix product over the band's tiles. Each invocation holds TQ quads of consecutive tiles
// (one four-component fetch each) for OCB output channels. The weights reach the lanes as in
// conv2d_subgroup.comp: the 8 lanes fetch one channel's OCB weights together, four each, and
// constant-lane shuffles broadcast them, because on lavapipe a fetch at an address all lanes
// share is still one scalar load per lane.
//
// Needs 8-lane subgroups, all active (the host sizes the band so no invocation leaves).
// Pushed: inC = channels of V (the scratch channels), outC = product channels (the layer's
// output channels, or 4 per output channel for transposed layers), inOffset = outOffset = 0,
// bandStride (a multiple of 4 TQ LX). Weights packed
// [point][block][c][o], OCB per block. Grid: x tile quads / TQ, y 36 points, z blocks.
#include "common.glsl"
#include "winograd.glsl"
layout(constant_id = 6) const int OCB = 32;  // output channels per invocation
layout(constant_id = 7) const int TQ = 1;    // tile quads per invocation

const int SG = 8;
layout(constant_id = 8) const int CU = 4;    // channels per loop iteration (divides inC)
const int NQ = OCB / 4;                      // weight quads of one channel
const int NF = (NQ * CU + SG - 1) / SG;      // quads each lane fetches per iteration

void main() {
    uint lane = gl_SubgroupInvocationID;
    int tq0 = int(gl_GlobalInvocationID.x) * TQ;
    int point = int(gl_WorkGroupID.y);
    int block = int(gl_WorkGroupID.z);
    int blocks = (pc.outC + OCB - 1) / OCB;
    int rowQuads = pc.bandStride / 4;

    // Scalar accumulators (arrays of vec4 measured the same on lavapipe, within noise).
    float acc[OCB][4 * TQ];
    [[unroll]] for (int o = 0; o < OCB; o++) {
        [[unroll]] for (int j = 0; j < 4 * TQ; j++) acc[o][j] = 0.0;
    }
    int vRow = (pc.inOffset >> 2) + point * pc.inC * rowQuads + tq0;
    int wRow = (point * blocks + block) * pc.inC * NQ;
    // CU channels per loop iteration (the host picks a CU that divides inC): each accumulator
    // takes CU products between its trips to the stack. On lavapipe 1, 4, 8 and 16 measured
    // the same within noise (docs/design.md).
    for (int c = 0; c < pc.inC; c += CU) {
        float v[CU][4 * TQ];
        [[unroll]] for (int u = 0; u < CU; u++) {
            [[unroll]] for (int j = 0; j < TQ; j++) {
                vec4 q = texelFetch(srcQuads, vRow + (c + u) * rowQuads + j);
                [[unroll]] for (int k = 0; k < 4; k++) v[u][4 * j + k] = q[k];
            }
        }
        vec4 wl[NF];
        [[unroll]] for (int f = 0; f < NF; f++) wl[f] = texelFetch(paramTexels, wRow + c * NQ + min(f * SG + int(lane), NQ * CU - 1));
        [[unroll]] for (int o = 0; o < OCB; o++) {
            [[unroll]] for (int u = 0; u < CU; u++) {
                // Weight (c + u, o) is component o % 4 of quad q = u NQ + o / 4, fetched by lane q % SG in round q / SG.
                const int q = u * NQ + o / 4;
                float w = subgroupShuffle(wl[q / SG][o % 4], uint(q % SG));
                [[unroll]] for (int j = 0; j < 4 * TQ; j++) acc[o][j] = fma(w, v[u][j], acc[o][j]);
            }
        }
    }

    [[unroll]] for (int o = 0; o < OCB; o++) {
        int co = block * OCB + o;
        if (co < pc.outC) {
            int base = pc.outOffset + (point * pc.outC + co) * pc.bandStride + 4 * tq0;
            [[unroll]] for (int j = 0; j < TQ; j++) {
                dstQuads[(base >> 2) + j] = vec4(acc[o][4 * j], acc[o][4 * j + 1], acc[o][4 * j + 2], acc[o][4 * j + 3]);
            }
        }
    }
}
