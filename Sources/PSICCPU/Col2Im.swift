/// The scatter-add half of a transposed convolution computed as `Wᵀ · X`: adds one output
/// channel's tap rows of the column matrix (one row of `bandRows × inputWidth` values per tap,
/// taps in `ky, kx` order) into that channel's output plane.
///
/// Shared by the float (`CPUConvTranspose2d`) and integer (`CPUIntConv`) transposed
/// convolutions. Always inlined so that each caller gets a loop specialised to its element type:
/// an out-of-line generic call here measured slower on the float layers.
@inline(__always)
func col2imAdd<T: AdditiveArithmetic>(
    into plane: UnsafeMutablePointer<T>, columns: UnsafeMutablePointer<T>, channel co: Int, columnLength n: Int,
    kernelSize k: Int, stride s: Int, padding p: Int,
    inputWidth wi: Int, bandRows rows: Int, firstRow row0: Int, outputHeight ho: Int, outputWidth wo: Int
) {
    for ky in 0..<k {
        for kx in 0..<k {
            let src = columns + ((co * k + ky) * k + kx) * n
            // Output column ox = ix * s - p + kx must lie in 0..<wo.
            let lo = max(0, (p - kx + s - 1) / s)
            let hiX = min(wi, floorDivide(wo - 1 + p - kx, s) + 1)
            guard lo < hiX else { continue }
            for iy in 0..<rows {
                let oy = (row0 + iy) * s - p + ky
                guard oy >= 0, oy < ho else { continue }
                let drow = plane + oy * wo - p + kx
                let srow = src + iy * wi
                if s == 1 {
                    for ix in lo..<hiX { drow[ix] += srow[ix] }
                } else {
                    for ix in lo..<hiX { drow[ix * s] += srow[ix] }
                }
            }
        }
    }
}
