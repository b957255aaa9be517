#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_shuffle : require
// Float 2-D convolution (Conv2dLayer) for CPU Vulkan drivers (lavapipe), where the 8
// invocations of a subgroup are the lanes of one AVX2 register. There, a texel fetch at an
// address all lanes share is still a per-lane loop of scalar loads (llvmpipe treats only
// constant offsets as uniform), so conv2d.comp pays for every weight 8 times: measured, its
// weight fetches cost about as much as its arithmetic. Here the lanes fetch one input
// channel's weights together, each lane a different four (OCB x K x K weights in
// OCB x K x K / 32 fetches), and a shuffle with a constant lane index, one broadcast
// instruction, hands each weight to all lanes. The tap loops run output channel, tap, pixel:
// each weight is broadcast once and the PY x PX accumulators of one channel are updated
// together (independent add chains).
//
// Needs a subgroup of exactly SG lanes, all active: the workgroup is a multiple of SG
// invocations and no invocation returns early. Weights are packed [block][ci][o][ky][kx].
#include "common.glsl"
#include "window.glsl"
layout(constant_id = 3) const int K = 5;     // kernel size
layout(constant_id = 4) const int S = 2;     // stride
layout(constant_id = 5) const int P = 2;     // padding
layout(constant_id = 6) const int OCB = 16;  // output channels per invocation
layout(constant_id = 7) const int PX = 4;    // output pixels per invocation along x
// As in conv.glsl: quad input fetches when rows and windows are 4-element aligned.
layout(constant_id = 11) const bool VEC_INPUT = false;
layout(constant_id = 12) const int PY = 2;   // output rows per invocation

const int SG = 8;                            // subgroup size (checked by the host)
const int TAPS = K * K;
const int NW4 = OCB * TAPS / 4;              // weight quads of one input channel
const int NF = (NW4 + SG - 1) / SG;          // quads each lane fetches per input channel
const int NB4 = OCB / 4;                     // bias quads of one block
const int NBF = (NB4 + SG - 1) / SG;         // bias quads each lane fetches
const int WIN = (PX - 1) * S + K;            // input columns one output row segment needs
const int ROWS = (PY - 1) * S + K;           // input rows the PY output rows need
const int SHIFT = (4 - P % 4) % 4;           // (ox0 * S - P) mod 4 under VEC_INPUT

void main() {
    int ox0 = int(gl_GlobalInvocationID.x) * PX;
    int block = int(gl_WorkGroupID.z);
    uint lane = gl_SubgroupInvocationID;
    int oy0 = int(gl_GlobalInvocationID.y) * PY;
    // Invocations past the edge compute clamped rows and skip only the stores.
    int iyTop = min(oy0, pc.outH - 1) * S - P;
    int ix0 = ox0 * S - P;

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

    for (int ci = 0; ci < pc.inC; ci++) {
        float win[ROWS][WIN];
        [[unroll]] for (int rr = 0; rr < ROWS; rr++) {
            int iy = iyTop + rr;
            LOAD_WINDOW(win[rr], ci, iy, ix0, WIN, SHIFT);
        }
        int wq = (block * pc.inC + ci) * NW4;
        vec4 wl[NF];
        [[unroll]] for (int f = 0; f < NF; f++) wl[f] = texelFetch(paramTexels, wq + min(f * SG + int(lane), NW4 - 1));
        [[unroll]] for (int o = 0; o < OCB; o++) {
            [[unroll]] for (int t = 0; t < TAPS; t++) {
                // Weight e is component e % 4 of quad q, which lane q % SG fetched in round q / SG.
                const int e = o * TAPS + t;
                const int q = e / 4;
                float w = subgroupShuffle(wl[q / SG][e % 4], uint(q % SG));
                const int ky = t / K, kx = t % K;
                [[unroll]] for (int r = 0; r < PY; r++) {
                    [[unroll]] for (int p = 0; p < PX; p++) {
                        acc[o][r][p] = fma(w, win[r * S + ky][p * S + kx], acc[o][r][p]);
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
                    if (ox0 + p < pc.outW) dst[rowBase + ox0 + p] = activate(acc[o][r][p]);
                }
            }
        }
    }
}
