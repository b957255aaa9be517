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

extension Tensor {
    /// The planar float tensor's rows `rows` and columns `columns` of every channel.
    func crop(rows: Range<Int>, columns: Range<Int>) -> Tensor {
        let source = floats ?? []
        let (h, w) = (shape.height, shape.width)
        var out = [Float]()
        out.reserveCapacity(shape.channels * rows.count * columns.count)
        for c in 0..<shape.channels {
            for y in rows {
                let base = (c * h + y) * w
                out.append(contentsOf: source[(base + columns.lowerBound)..<(base + columns.upperBound)])
            }
        }
        return Tensor(shape: TensorShape(channels: shape.channels, height: rows.count, width: columns.count), floats: out)
    }
}

/// Writes the core of tiles' outputs into one planar float tensor.
struct TileCanvas {
    private(set) var values: [Float]
    let shape: TensorShape

    init(shape: TensorShape) {
        self.shape = shape
        values = [Float](repeating: 0, count: shape.count)
    }

    /// Copies `tile`'s core (the output of the tile `rows` × `columns`, `scale` outputs per
    /// cell along each axis) to where it lies in the whole output.
    mutating func paste(_ tile: Tensor, rows: TilePlan.Span, columns: TilePlan.Span, scale: Int) {
        let source = tile.floats ?? []
        let (th, tw) = (tile.shape.height, tile.shape.width)
        let (h, w) = (shape.height, shape.width)
        let y0 = (rows.coreStart - rows.start) * scale, x0 = (columns.coreStart - columns.start) * scale
        let height = (rows.coreEnd - rows.coreStart) * scale, width = (columns.coreEnd - columns.coreStart) * scale
        values.withUnsafeMutableBufferPointer { dst in
            for c in 0..<min(shape.channels, tile.shape.channels) {
                for y in 0..<height {
                    let from = (c * th + y0 + y) * tw + x0
                    let to = (c * h + rows.coreStart * scale + y) * w + columns.coreStart * scale
                    for x in 0..<width { dst[to + x] = source[from + x] }
                }
            }
        }
    }

    var tensor: Tensor { Tensor(shape: shape, floats: values) }
}
