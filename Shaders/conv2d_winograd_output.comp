#version 450
#extension GL_GOOGLE_include_directive : require
// Output transform of a Winograd convolution (see winograd.glsl): for a quad of 4 tiles of
// the band and one product channel z, A^T M A over the 36 products, plus bias and activation,
// stored where the tiles lie inside the output (edge tiles are partial). Under D2S (transposed
// 5 x 5 stride-2 layers) product channel z = 4 co + 2 ry + rx holds output phase (ry, rx) of
// channel co: tile pixel (y, x) goes to output (2 y + ry, 2 x + rx).
// Pushed: inOffset = 0 (the products), the output view (outC, outH, outW, outOffset),
// biasOffset (a bias per product channel), the band. Grid: x tile quads of the band, y
// groups of CPI product channels.
#include "common.glsl"
#include "winograd.glsl"
// Quad stores: output rows and the view 4-aligned (not under D2S).
layout(constant_id = 11) const bool VEC_OUTPUT = false;
layout(constant_id = 12) const bool D2S = false;
// Product channels per invocation (see conv2d_winograd_input.comp).
layout(constant_id = 6) const int CPI = 8;

void main() {
    int t0 = 4 * int(gl_GlobalInvocationID.x);
    int zC = D2S ? 4 * pc.outC : pc.outC;
    if (t0 >= pc.bandTiles) return;
    int zEnd = min(zC, (int(gl_GlobalInvocationID.y) + 1) * CPI);
    for (int z = int(gl_GlobalInvocationID.y) * CPI; z < zEnd; z++) {
        int co = D2S ? z / 4 : z;
        int ry = D2S ? (z / 2) % 2 : 0, rx = D2S ? z % 2 : 0;
        int step = D2S ? 2 : 1;
        int ty = pc.tileRow0 + t0 / pc.tilesX, tx0 = t0 % pc.tilesX;

        vec4 m[6][6];
        [[unroll]] for (int p = 0; p < 6; p++) {
            [[unroll]] for (int q = 0; q < 6; q++) {
                m[p][q] = texelFetch(srcQuads, (pc.inOffset + ((p * 6 + q) * zC + z) * pc.bandStride + t0) >> 2);
            }
        }
        vec4 cols[4][6];   // A^T m, column by column
        [[unroll]] for (int q = 0; q < 6; q++) {
            vec4 y[4];
            WINOGRAD_AT(y, m[0][q], m[1][q], m[2][q], m[3][q], m[4][q], m[5][q]);
            [[unroll]] for (int i = 0; i < 4; i++) cols[i][q] = y[i];
        }
        float bias = params[pc.biasOffset + z];
        int ox0 = 4 * tx0;         // first tile column of the quad (the output column but under D2S)
        [[unroll]] for (int i = 0; i < 4; i++) {
            int oy = step * (4 * ty + i) + ry;
            vec4 y[4];     // (A^T m) A, row by row: y[j][k] is tile column 4 (tx0 + k) + j
            WINOGRAD_AT(y, cols[i][0], cols[i][1], cols[i][2], cols[i][3], cols[i][4], cols[i][5]);
            if (oy < pc.outH) {
                int rowBase = pc.outOffset + (co * pc.outH + oy) * pc.outW;
                if (!D2S && VEC_OUTPUT && ox0 + 16 <= pc.outW) {
                    [[unroll]] for (int k = 0; k < 4; k++) {
                        vec4 o = vec4(activate(y[0][k] + bias), activate(y[1][k] + bias), activate(y[2][k] + bias),
                                      activate(y[3][k] + bias));
                        dstQuads[(rowBase + ox0 + 4 * k) >> 2] = o;
                    }
                } else {
                    [[unroll]] for (int k = 0; k < 4; k++) {
                        [[unroll]] for (int j = 0; j < 4; j++) {
                            int ox = step * (ox0 + 4 * k + j) + rx;
                            if (ox < pc.outW) dst[rowBase + ox] = activate(y[j][k] + bias);
                        }
                    }
                }
            }
        }
    }
}
