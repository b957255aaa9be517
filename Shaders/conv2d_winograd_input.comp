#version 450
#extension GL_GOOGLE_include_directive : require
// Input transform of a Winograd 5 x 5 stride-2 convolution (see winograd.glsl): for a quad
// of 4 tiles of the band and one input channel, the four phases' 6 x 6 input tiles, each
// transformed to B^T d B, written to the scratch as channels 4 ci + 2 a + b.
// Pushed: the input view (inC, inH, inW, inOffset), outOffset = 0, the band (tileRow0,
// tilesX a multiple of 4, bandTiles, bandStride). Grid: x tile quads of the band, y input
// channels.
#include "common.glsl"
#include "window.glsl"
#include "winograd.glsl"
layout(constant_id = 5) const int P = 2;     // padding of the 5 x 5 convolution
// Quad fetches of the input rows (their starts, and so every window's, 4-aligned).
layout(constant_id = 11) const bool VEC_INPUT = false;

const int SEG = 36;                          // input columns under 4 tiles: 8 * 3 + 2 * 5 + 2
const int SHIFT = (4 - P % 4) % 4;           // (8 tx - P) mod 4

void main() {
    int t0 = 4 * int(gl_GlobalInvocationID.x);
    int ci = int(gl_GlobalInvocationID.y);
    // No subgroup operations here: invocations past the band may leave.
    if (t0 >= pc.bandTiles || ci >= pc.inC) return;
    int ty = pc.tileRow0 + t0 / pc.tilesX, tx0 = t0 % pc.tilesX;
    int zC = 4 * pc.inC;
    int x0 = 8 * tx0 - P;
    [[unroll]] for (int a = 0; a < 2; a++) {
        // Rows 8 ty + 2 r + a - P of the 4 tiles: tile k, phase b, column c is seg[r][8 k + 2 c + b].
        float seg[6][SEG];
        [[unroll]] for (int r = 0; r < 6; r++) LOAD_WINDOW(seg[r], ci, 8 * ty + 2 * r + a - P, x0, SEG, SHIFT);
        [[unroll]] for (int b = 0; b < 2; b++) {
            vec4 cols[6][6];   // B^T d, column by column; components are the 4 tiles
            [[unroll]] for (int c = 0; c < 6; c++) {
                vec4 d[6];
                [[unroll]] for (int r = 0; r < 6; r++) {
                    d[r] = vec4(seg[r][2 * c + b], seg[r][8 + 2 * c + b], seg[r][16 + 2 * c + b], seg[r][24 + 2 * c + b]);
                }
                vec4 y[6];
                WINOGRAD_BT(y, d[0], d[1], d[2], d[3], d[4], d[5]);
                [[unroll]] for (int r = 0; r < 6; r++) cols[r][c] = y[r];
            }
            int ch = 4 * ci + 2 * a + b;
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
