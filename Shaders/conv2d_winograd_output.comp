#version 450
#extension GL_GOOGLE_include_directive : require
// Output transform of a Winograd convolution (see winograd.glsl): for a quad of 4 tiles of
// the band and one output channel, A^T M A over the 36 products, plus bias and activation,
// stored where the tiles lie inside the output (edge tiles are partial).
// Pushed: inOffset = 0 (the products), the output view (outC, outH, outW, outOffset),
// biasOffset, the band. Grid: x tile quads of the band, y output channels.
#include "common.glsl"
#include "winograd.glsl"
// Quad stores: output rows and the view 4-aligned.
layout(constant_id = 11) const bool VEC_OUTPUT = false;

void main() {
    int t0 = 4 * int(gl_GlobalInvocationID.x);
    int co = int(gl_GlobalInvocationID.y);
    if (t0 >= pc.bandTiles || co >= pc.outC) return;
    int ty = pc.tileRow0 + t0 / pc.tilesX, tx0 = t0 % pc.tilesX;

    vec4 m[6][6];
    [[unroll]] for (int p = 0; p < 6; p++) {
        [[unroll]] for (int q = 0; q < 6; q++) {
            m[p][q] = texelFetch(srcQuads, (pc.inOffset + ((p * 6 + q) * pc.outC + co) * pc.bandStride + t0) >> 2);
        }
    }
    vec4 cols[4][6];   // A^T m, column by column
    [[unroll]] for (int q = 0; q < 6; q++) {
        vec4 y[4];
        WINOGRAD_AT(y, m[0][q], m[1][q], m[2][q], m[3][q], m[4][q], m[5][q]);
        [[unroll]] for (int i = 0; i < 4; i++) cols[i][q] = y[i];
    }
    float bias = params[pc.biasOffset + co];
    int ox0 = 4 * tx0;         // first output column of the quad
    [[unroll]] for (int i = 0; i < 4; i++) {
        int oy = 4 * ty + i;
        vec4 y[4];     // (A^T m) A, row by row: y[j][k] is column 4 (tx0 + k) + j
        WINOGRAD_AT(y, cols[i][0], cols[i][1], cols[i][2], cols[i][3], cols[i][4], cols[i][5]);
        if (oy < pc.outH) {
            int rowBase = pc.outOffset + (co * pc.outH + oy) * pc.outW;
            if (VEC_OUTPUT && ox0 + 16 <= pc.outW) {
                [[unroll]] for (int k = 0; k < 4; k++) {
                    vec4 o = vec4(activate(y[0][k] + bias), activate(y[1][k] + bias), activate(y[2][k] + bias),
                                  activate(y[3][k] + bias));
                    dstQuads[(rowBase + ox0 + 4 * k) >> 2] = o;
                }
            } else {
                [[unroll]] for (int k = 0; k < 4; k++) {
                    [[unroll]] for (int j = 0; j < 4; j++) {
                        int ox = ox0 + 4 * k + j;
                        if (ox < pc.outW) dst[rowBase + ox] = activate(y[j][k] + bias);
                    }
                }
            }
        }
    }
}
