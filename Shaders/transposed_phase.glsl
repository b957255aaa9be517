// Geometry of output phase (RY, RX) of a transposed convolution, shared by its kernels
// (conv_transpose.glsl, conv_transpose2d_subgroup.comp): the phase holds outputs
// (S q + RY, S q' + RX), and along one axis only the taps k = k0 + a S, k0 = (r + P) mod S,
// reach phase r (ConvTranspose2dLayer.phaseTaps on the host). The including kernel declares
// K, S, P, RY and RX.

// Taps of phase r along one axis: k = firstTap(r) + a S for a < hits(r).
int firstTap(int r) { return (r + P) % S; }
int hits(int r) { return firstTap(r) < K ? (K - 1 - firstTap(r)) / S + 1 : 0; }

const int KY0 = (RY + P) % S;
const int KX0 = (RX + P) % S;
const int TY = KY0 < K ? (K - 1 - KY0) / S + 1 : 0;
const int TX = KX0 < K ? (K - 1 - KX0) / S + 1 : 0;
// Input columns: tap kx reads column qx + (RX + P - kx) / S; over the phase's taps the
// offsets run from DXLO = DX0 - SPAN up to DX0.
const int DX0 = (RX + P - KX0) / S;
const int SPAN = TX > 0 ? TX - 1 : 0;         // columns between the first and last tap
const int DXLO = DX0 - SPAN;
const int DY0 = (RY + P - KY0) / S;          // row offset of tap ky = KY0; tap a reads DY0 - a
