import PSICEngine

/// How an image too large for one graph run is cut into overlapping tiles whose results join
/// without seams.
///
/// Tiles are laid out on the latent grid (one cell = 16 × 16 pixels), whichever way the
/// transform runs: g_a reads 16 pixels per cell and writes one latent, g_s the reverse. Each
/// tile reaches at least `halo` cells past its core on every side that is not the image's edge. An
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
        guard maxSide - 2 * halo >= 1 else { return nil }
        rows = Self.spans(length: height, maxSide: maxSide, halo: halo)
        columns = Self.spans(length: width, maxSide: maxSide, halo: halo)
    }

    /// Every tile, row-major.
    var tiles: [(rows: Span, columns: Span)] {
        rows.flatMap { r in columns.map { c in (r, c) } }
    }

    /// Tiles of one length along the axis, so that every tile of an image has one shape and
    /// shares one prepared graph (tiles of several shapes each kept a graph: 1.5 GB of idle
    /// graphs for an 8.6-megapixel encode with `--tile-mb 32`). The fewest tiles whose cores
    /// cover the axis, each as short as that count allows; starts spread evenly from the first
    /// edge to the last, so neighbours overlap by at least two halos. A tile's core begins
    /// `halo` cells into it (at the edge for the first) and runs to the next core, which the
    /// spacing keeps at least `halo` cells before the tile's end (at the edge for the last).
    /// An axis that fits whole is not cut (it needs no halo).
    static func spans(length: Int, maxSide: Int, halo: Int) -> [Span] {
        if length <= maxSide { return [Span(start: 0, end: length, coreStart: 0, coreEnd: length)] }
        let maxCore = maxSide - 2 * halo
        let count = (length - 2 * halo + maxCore - 1) / maxCore
        let side = (length - 2 * halo + count - 1) / count + 2 * halo
        let starts = (0..<count).map { i in i * (length - side) / (count - 1) }
        return starts.indices.map { i in
            Span(start: starts[i], end: starts[i] + side,
                 coreStart: i == 0 ? 0 : starts[i] + halo,
                 coreEnd: i == count - 1 ? length : starts[i + 1] + halo)
        }
    }

    /// The largest square tile side, in cells, whose graph stays within `bytesLimit`, for a
    /// graph whose largest tensor takes `bytesPerCell` per cell of its grid.
    static func maxSide(bytesLimit: Int, bytesPerCell: Double) -> Int {
        guard bytesPerCell > 0 else { return Int.max }
        return Int((Double(bytesLimit) / bytesPerCell).squareRoot())
    }
}
