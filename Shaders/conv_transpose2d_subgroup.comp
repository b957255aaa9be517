#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_shuffle : require
// Float transposed 2-D convolution (ConvTranspose2dLayer) for CPU Vulkan drivers (lavapipe):
// the output-phase gather of conv_transpose.glsl with the weight scheme of
// conv2d_subgroup.comp. The 8 lanes of a subgroup fetch one input channel's weights for this
// phase together, each lane a different four, and a shuffle at a constant lane index hands
// each weight to all lanes (on llvmpipe a fetch at an address the lanes share is still a
// per-lane loop of scalar loads; see conv2d_subgroup.comp).
//
// Phase (RY, RX) is hit by the taps ky = KY0 + a*S and kx = KX0 + b*S only, so the weights
// are packed per phase: [phase][block][ci][o][a][b], phases in the order (0,0), (0,1), ...,
// each one TY*TX taps wide, so no fetch brings a weight this phase does not use.
//
// Needs a subgroup of exactly SG lanes, all active: the workgroup is a multiple of SG
// invocations and no invocation returns early.
#include "common.glsl"
#include "window.glsl"
layout(constant_id = 3) const int K = 5;
layout(constant_id = 4) const int S = 2;
layout(constant_id = 5) const int P = 2;
layout(constant_id = 6) const int OCB = 32;
layout(constant_id = 7) const int PX = 4;
layout(constant_id = 8) const int RY = 0;
layout(constant_id = 9) const int RX = 0;
// Quad input fetches: set when rows start on 4-element boundaries and PX is a multiple of 4.
layout(constant_id = 11) const bool VEC_INPUT = false;
layout(constant_id = 12) const int PY = 1;

const int SG = 8;                            // subgroup size (checked by the host)

#include "transposed_phase.glsl"
const int T = TY * TX;                       // taps of this phase
const int NW4 = OCB * T / 4;                 // weight quads of one input channel
const int NF = NW4 > 0 ? (NW4 + SG - 1) / SG : 1;  // quads each lane fetches per input channel
const int NB4 = OCB / 4;                     // bias quads of one block
const int NBF = (NB4 + SG - 1) / SG;         // bias quads each lane fetches
const int WIN = PX + SPAN;
const int SHIFT = ((DXLO % 4) + 4) % 4;      // (qx0 + DXLO) mod 4 under VEC_INPUT

void main() {
    int qx0 = int(gl_GlobalInvocationID.x) * PX;
    int qy0 = int(gl_GlobalInvocationID.y) * PY;
    int block = int(gl_WorkGroupID.z);
    uint lane = gl_SubgroupInvocationID;

    // The block's biases reach the lanes like the weights: fetched four per lane, broadcast by
    // shuffles (a storage-buffer load per channel, a per-lane loop on lavapipe, measured ~10 %
    // of g_a.0). The host packs biasOffset and OCB as multiples of 4.
    vec4 bl[NBF];
    [[unroll]] for (int f = 0; f < NBF; f++) {
        bl[f] = texelFetch(paramTexels, (pc.biasOffset >> 2) + block * NB4 + min(f * SG + int(lane), NB4 - 1));
    }
    float acc[OCB][PY][PX];
    [[unroll]] for (int o = 0; o < OCB; o++) {
        const int q = o / 4;
        float b = subgroupShuffle(bl[q / SG][o % 4], uint(q % SG));
        [[unroll]] for (int r = 0; r < PY; r++) {
            [[unroll]] for (int p = 0; p < PX; p++) acc[o][r][p] = b;
        }
    }

    // Quads before this phase's weights: the earlier phases' blocks x inC x OCB x taps.
    int blocks = (pc.outC + OCB - 1) / OCB;
    int earlierTaps = 0;
    [[unroll]] for (int ry = 0; ry < S; ry++) {
        [[unroll]] for (int rx = 0; rx < S; rx++) {
            if (ry * S + rx < RY * S + RX) earlierTaps += hits(ry) * hits(rx);
        }
    }
    int phaseQuads = blocks * pc.inC * OCB * earlierTaps / 4;

    int ix0 = qx0 + DXLO;
    int ciEnd = T > 0 ? pc.inC : 0;
    for (int ci = 0; ci < ciEnd; ci++) {
        float win[TY > 0 ? TY : 1][PY][WIN];
        [[unroll]] for (int a = 0; a < TY; a++) {
            [[unroll]] for (int r = 0; r < PY; r++) {
                // Invocations past the edge read clamped rows and skip only the stores.
                int iy = min(qy0 + r, pc.qH - 1) + DY0 - a;
                LOAD_WINDOW(win[a][r], ci, iy, ix0, WIN, SHIFT);
            }
        }
        int wq = phaseQuads + (block * pc.inC + ci) * NW4;
        vec4 wl[NF];
        [[unroll]] for (int f = 0; f < NF; f++) wl[f] = texelFetch(paramTexels, wq + min(f * SG + int(lane), NW4 - 1));
        [[unroll]] for (int o = 0; o < OCB; o++) {
            [[unroll]] for (int a = 0; a < TY; a++) {
                [[unroll]] for (int b = 0; b < TX; b++) {
                    // Weight e is component e % 4 of quad q, which lane q % SG fetched in round q / SG.
                    const int e = (o * TY + a) * TX + b;
                    const int q = e / 4;
                    float w = subgroupShuffle(wl[q / SG][e % 4], uint(q % SG));
                    // Tap kx = KX0 + b*S reads column offset DX0 - b, window index TX - 1 - b.
                    const int d = SPAN - b;
                    [[unroll]] for (int r = 0; r < PY; r++) {
                        [[unroll]] for (int p = 0; p < PX; p++) {
                            acc[o][r][p] = fma(w, win[a][r][p + d], acc[o][r][p]);
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
                    if (ox < pc.outW) dst[rowBase + ox] = activate(acc[o][r][p]);
                }
            }
        }
    }
}
