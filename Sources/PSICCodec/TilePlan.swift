import PSICEngine

/// How an image too large for one graph run is cut into overlapping tiles whose results join
/// without seams.
///
/// Tiles are laid out on the latent grid (one cell = 16 × 16 pixels), whichever way the
/// transform runs: g_a reads 16 pixels per cell and writes one latent, g_s the reverse. Each
/// tile reaches `halo` cells past its core on every side that is not the image's edge. An
/// output inside the core then depends only on inputs inside the tile (the halo covers the
/// transform's receptive field), so pasting the cores together gives the same tensor as one
/// run over the whole image, up to the order of float additions. Tiles start on whole cells,
/// so each sees the same stride phase as the whole image, and the zero padding at a tile's
/// outer edge is the image's own.
struct TilePlan: Equatable, Sendable {
    /// One tile along one axis, in cells: `start..<end` is read, `coreStart..<coreEnd` is kept.
    struct Span: Equatable, Sendable {
        let start: Int
        let end: Int
        let coreStart: Int
        let coreEnd: Int
    }

    let rows: [Span]
    let columns: [Span]

    /// The tiles of a grid of `height` × `width` cells whose tiles (halo included) are at most
    /// `maxSide` cells on a side, or nil when the grid needs no tiling (it fits whole) or
    /// cannot be tiled (`maxSide` leaves no core beside the halos).
    init?(height: Int, width: Int, maxSide: Int, halo: Int) {
        guard height > maxSide || width > maxSide else { return nil }
        let core = maxSide - 2 * halo
        guard core >= 1 else { return nil }
        rows = Self.spans(length: height, maxSide: maxSide, core: core, halo: halo)
        columns = Self.spans(length: width, maxSide: maxSide, core: core, halo: halo)
    }

    /// Every tile, row-major.
    var tiles: [(rows: Span, columns: Span)] {
        rows.flatMap { r in columns.map { c in (r, c) } }
    }

    /// Cores of equal size but the last, so that most tiles share one prepared graph; an axis
    /// that fits whole is not cut (it needs no halo).
    static func spans(length: Int, maxSide: Int, core maxCore: Int, halo: Int) -> [Span] {
        if length <= maxSide { return [Span(start: 0, end: length, coreStart: 0, coreEnd: length)] }
        let count = (length + maxCore - 1) / maxCore
        let core = (length + count - 1) / count
        return stride(from: 0, to: length, by: core).map { c0 in
            let c1 = min(length, c0 + core)
            return Span(start: max(0, c0 - halo), end: min(length, c1 + halo), coreStart: c0, coreEnd: c1)
        }
    }

    /// The largest square tile side, in cells, whose graph stays within `bytesLimit`, for a
    /// graph whose largest tensor takes `bytesPerCell` per cell of its grid.
    static func maxSide(bytesLimit: Int, bytesPerCell: Double) -> Int {
        guard bytesPerCell > 0 else { return Int.max }
        return Int((Double(bytesLimit) / bytesPerCell).squareRoot())
    }
}
