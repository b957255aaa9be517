// Winograd F(4x4, 3x3) (Lavin & Gray, points 0, +-1, +-2): a 4 x 4 output tile of a 3 x 3
// correlation is A^T [(G g G^T) . (B^T d B)] A for the 6 x 6 input tile d. 36 multiplies
// per tile and channel instead of 144. The conv2d_winograd_* kernels apply it to 5 x 5
// stride-2 convolutions rewritten as 3 x 3 stride-1 ones over the four input phases
// (x[2i + a][2j + b]), whose 3 x 3 kernels are the taps w[2u + a][2v + b] (zero past 5),
// and to transposed 5 x 5 stride-2 convolutions rewritten as one 3 x 3 correlation per
// output phase (written back by depth to space); the host transforms the weights
// (G g G^T) once, in double precision.

// The scratch is laid out [point][channel][tile], each row `pc.bandStride` elements long.
// Every kernel handles a quad of 4 consecutive tiles of one tile row (the host pads rows to
// whole quads), so the scratch moves in four-component loads and stores: on lavapipe each
// load or store is a loop over the lanes, whose cost barely depends on the width.

// Four-component view of the output buffer (binding 1), aliasing `dst`.
layout(std430, binding = 1) writeonly buffer OutputQuads { vec4 dstQuads[]; };

// y = B^T x for a column or row of 6.
#define WINOGRAD_BT(Y, X0, X1, X2, X3, X4, X5) {                                         \
    Y[0] = 4.0 * (X0) - 5.0 * (X2) + (X4);                                                \
    Y[1] = -4.0 * ((X1) + (X2)) + (X3) + (X4);                                            \
    Y[2] = 4.0 * ((X1) - (X2)) - (X3) + (X4);                                             \
    Y[3] = 2.0 * ((X3) - (X1)) - (X2) + (X4);                                             \
    Y[4] = 2.0 * ((X1) - (X3)) - (X2) + (X4);                                             \
    Y[5] = 4.0 * (X1) - 5.0 * (X3) + (X5);                                                \
}

// y = A^T x for a column or row of 6 (four tiles at once).
#define WINOGRAD_AT(Y, X0, X1, X2, X3, X4, X5) {                                         \
    vec4 s12_ = (X1) + (X2), d12_ = (X1) - (X2), s34_ = (X3) + (X4), d34_ = (X3) - (X4); \
    Y[0] = (X0) + s12_ + s34_;                                                            \
    Y[1] = d12_ + 2.0 * d34_;                                                             \
    Y[2] = s12_ + 4.0 * s34_;                                                             \
    Y[3] = d12_ + 8.0 * d34_ + (X5);                                                      \
}
