#version 450
#extension GL_GOOGLE_include_directive : require
// Input transform of a Winograd convolution (see winograd.glsl) for a quad of 4 tiles of the
// band and one input channel. S = 2 (a 5 x 5 stride-2 convolution): the four phases' 6 x 6
// input tiles, each transformed to B^T d B and written to the scratch as channels
// 4 ci + 2 a + b. S = 1 (a 3 x 3 stride-1 correlation with padding 1, the form transposed
// 5 x 5 stride-2 convolutions take): the input's own 6 x 6 tiles, as channel ci.
// Pushed: the input view (inC, inH, inW, inOffset), outOffset = 0, the band (tileRow0,
// tilesX a multiple of 4, bandTiles, bandStride). Grid: x tile quads of the band, y groups
// of CPI input channels.
#include "common.glsl"
#include "window.glsl"
#include "winograd.glsl"
layout(constant_id = 4) const int S = 2;     // 2: input phases of a 5 x 5/2 layer; 1: none
layout(constant_id = 5) const int P = 2;     // padding of the 5 x 5 convolution (S = 2)
// Input channels per invocation: on lavapipe every subgroup run has a fixed cost of
// microseconds, more than one channel's transform.
layout(constant_id = 6) const int CPI = 8;
// Quad fetches of the input rows (their starts, and so every window's, 4-aligned).
layout(constant_id = 11) const bool VEC_INPUT = false;

const int PAD = S == 2 ? P : 1;              // input rows/columns before the first tile
const int SEG = S == 2 ? 36 : 18;            // input columns under 4 tiles: 4 S * 3 + S * 5 + S
const int SHIFT = ((-PAD) % 4 + 4) % 4;      // (4 S tx - PAD) mod 4

void main() {
    int t0 = 4 * int(gl_GlobalInvocationID.x);
    // No subgroup operations here: invocations past the band may leave.
    if (t0 >= pc.bandTiles) return;
    int ty = pc.tileRow0 + t0 / pc.tilesX, tx0 = t0 % pc.tilesX;
    int zC = S * S * pc.inC;
    int x0 = 4 * S * tx0 - PAD;
    int ciEnd = min(pc.inC, (int(gl_GlobalInvocationID.y) + 1) * CPI);
    for (int ci = int(gl_GlobalInvocationID.y) * CPI; ci < ciEnd; ci++) {
        [[unroll]] for (int a = 0; a < S; a++) {
            // Rows 4 S ty + S r + a - PAD of the 4 tiles: tile k, phase b, column c is seg[r][4 S k + S c + b].
            float seg[6][SEG];
            [[unroll]] for (int r = 0; r < 6; r++) LOAD_WINDOW(seg[r], ci, 4 * S * ty + S * r + a - PAD, x0, SEG, SHIFT);
            [[unroll]] for (int b = 0; b < S; b++) {
                vec4 cols[6][6];   // B^T d, column by column; components are the 4 tiles
                [[unroll]] for (int c = 0; c < 6; c++) {
                    vec4 d[6];
                    [[unroll]] for (int r = 0; r < 6; r++) {
                        d[r] = vec4(seg[r][S * c + b], seg[r][4 * S + S * c + b], seg[r][8 * S + S * c + b],
                                    seg[r][12 * S + S * c + b]);
                    }
                    vec4 y[6];
                    WINOGRAD_BT(y, d[0], d[1], d[2], d[3], d[4], d[5]);
                    [[unroll]] for (int r = 0; r < 6; r++) cols[r][c] = y[r];
                }
                int ch = S * S * ci + S * a + b;
                [[unroll]] for (int r = 0; r < 6; r++) {
                    vec4 v[6];     // (B^T d) B, row by row
                    WINOGRAD_BT(v, cols[r][0], cols[r][1], cols[r][2], cols[r][3], cols[r][4], cols[r][5]);
                    [[unroll]] for (int c = 0; c < 6; c++) {
                        dstQuads[(pc.outOffset + ((r * 6 + c) * zC + ch) * pc.bandStride + t0) >> 2] = v[c];
                    }
                }
            }
        }
    }
}
