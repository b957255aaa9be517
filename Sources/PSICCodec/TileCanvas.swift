import PSICEngine

// Cutting a tile's input out of a planar tensor and pasting its output's core back: the data
// movement of `TilePlan`'s tiles (`ModelTransforms.runTiles`).

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
        let channels = min(shape.channels, tile.shape.channels)
        source.withUnsafeBufferPointer { src in
            values.withUnsafeMutableBufferPointer { dst in
                for c in 0..<channels {
                    for y in 0..<height {
                        let from = (c * th + y0 + y) * tw + x0
                        let to = (c * h + rows.coreStart * scale + y) * w + columns.coreStart * scale
                        (dst.baseAddress! + to).update(from: src.baseAddress! + from, count: width)
                    }
                }
            }
        }
    }

    var tensor: Tensor { Tensor(shape: shape, floats: values) }
}
