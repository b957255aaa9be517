import PSICEngine

// Cutting a tile's input out of a planar tensor and pasting its output's core back: the data
// movement of `TilePlan`'s tiles (`ModelTransforms.runTiles`). Float tensors (g_a, h_a, g_s)
// and integer ones (h_s, the entropy-parameter networks) alike.

extension Tensor {
    /// The planar tensor's rows `rows` and columns `columns` of every channel.
    func crop(rows: Range<Int>, columns: Range<Int>) -> Tensor {
        let cropped = TensorShape(channels: shape.channels, height: rows.count, width: columns.count)
        switch storage {
        case let .float32(v): return Tensor(shape: cropped, floats: Self.crop(v, shape, rows, columns))
        case let .int32(v): return Tensor(shape: cropped, ints: Self.crop(v, shape, rows, columns))
        }
    }

    private static func crop<T>(_ source: [T], _ shape: TensorShape, _ rows: Range<Int>, _ columns: Range<Int>) -> [T] {
        let (h, w) = (shape.height, shape.width)
        var out = [T]()
        out.reserveCapacity(shape.channels * rows.count * columns.count)
        for c in 0..<shape.channels {
            for y in rows {
                let base = (c * h + y) * w
                out.append(contentsOf: source[(base + columns.lowerBound)..<(base + columns.upperBound)])
            }
        }
        return out
    }
}

/// Writes the cores of tiles' outputs into one planar tensor of the tiles' scalar type.
struct TileCanvas {
    let shape: TensorShape
    let scalarType: ScalarType
    // One of the two is in use (`scalarType`); two plain arrays keep pasting in place, where an
    // enum's payload would be copied on every write.
    private var floats: [Float] = []
    private var ints: [Int32] = []

    init(shape: TensorShape, scalarType: ScalarType) {
        self.shape = shape
        self.scalarType = scalarType
        switch scalarType {
        case .float32: floats = [Float](repeating: 0, count: shape.count)
        case .int32: ints = [Int32](repeating: 0, count: shape.count)
        }
    }

    /// Copies `tile`'s core (the output of the tile `rows` × `columns`, `scale` outputs per
    /// cell along each axis) to where it lies in the whole output. The tile's scalar type must
    /// be the canvas's.
    mutating func paste(_ tile: Tensor, rows: TilePlan.Span, columns: TilePlan.Span, scale: Int) {
        precondition(tile.scalarType == scalarType, "tile of \(tile.scalarType) pasted on a \(scalarType) canvas")
        // The copy below uses unchecked pointers: the tile must be exactly its span times `scale`.
        precondition(tile.shape.height == (rows.end - rows.start) * scale && tile.shape.width == (columns.end - columns.start) * scale
                     && tile.shape.channels == shape.channels, "tile \(tile.shape) does not match its span")
        switch tile.storage {
        case let .float32(v): Self.paste(v, tile.shape, into: &floats, shape, rows, columns, scale)
        case let .int32(v): Self.paste(v, tile.shape, into: &ints, shape, rows, columns, scale)
        }
    }

    private static func paste<T>(_ source: [T], _ tileShape: TensorShape, into values: inout [T], _ shape: TensorShape,
                                 _ rows: TilePlan.Span, _ columns: TilePlan.Span, _ scale: Int) {
        let (th, tw) = (tileShape.height, tileShape.width)
        let (h, w) = (shape.height, shape.width)
        let y0 = (rows.coreStart - rows.start) * scale, x0 = (columns.coreStart - columns.start) * scale
        let height = (rows.coreEnd - rows.coreStart) * scale, width = (columns.coreEnd - columns.coreStart) * scale
        source.withUnsafeBufferPointer { src in
            values.withUnsafeMutableBufferPointer { dst in
                for c in 0..<shape.channels {
                    for y in 0..<height {
                        let from = (c * th + y0 + y) * tw + x0
                        let to = (c * h + rows.coreStart * scale + y) * w + columns.coreStart * scale
                        (dst.baseAddress! + to).update(from: src.baseAddress! + from, count: width)
                    }
                }
            }
        }
    }

    var tensor: Tensor {
        switch scalarType {
        case .float32: Tensor(shape: shape, floats: floats)
        case .int32: Tensor(shape: shape, ints: ints)
        }
    }
}
