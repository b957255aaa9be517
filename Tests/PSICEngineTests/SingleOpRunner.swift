import XCTest
@testable import PSICEngine

/// Runs a one-op graph on `backend`: the op reads the channel view `inView` of `input` and writes
/// the view at `outOffset` of an output tensor with `outExtra` more channels, so slicing and
/// concatenation through views are exercised too. Returns the op's output view, and fails the
/// test if channels no node writes are not zero.
func runSingleOp(_ op: LayerOp, on backend: Backend, input: Tensor, inView: (offset: Int, channels: Int),
                 outOffset: Int = 0, outExtra: Int = 0, file: StaticString = #filePath, line: UInt = #line) throws -> Tensor {
    var g = Graph()
    let x = g.addInput("x", shape: input.shape, type: input.scalarType)
    let view = TensorView(tensor: x, channelOffset: inView.offset, channels: inView.channels)
    let inShape = TensorShape(channels: inView.channels, height: input.shape.height, width: input.shape.width)
    let outShape = op.outputShape(for: inShape)!
    let yDecl = TensorShape(channels: outShape.channels + outExtra, height: outShape.height, width: outShape.width)
    let y = g.addTensor("y", shape: yDecl, type: op.scalarType)
    try g.append(op, input: view, output: TensorView(tensor: y, channelOffset: outOffset, channels: outShape.channels))
    g.markOutput(y)
    let result = try backend.prepare(g).run(inputs: [x: input]).outputs[y]!
    let plane = outShape.planeSize
    let range = outOffset * plane..<(outOffset + outShape.channels) * plane
    switch result.storage {
    case let .float32(v):
        XCTAssertTrue(v[..<range.lowerBound].allSatisfy { $0 == 0 } && v[range.upperBound...].allSatisfy { $0 == 0 },
                      "unwritten channels are not zero", file: file, line: line)
        return Tensor(shape: outShape, floats: Array(v[range]))
    case let .int32(v):
        XCTAssertTrue(v[..<range.lowerBound].allSatisfy { $0 == 0 } && v[range.upperBound...].allSatisfy { $0 == 0 },
                      "unwritten channels are not zero", file: file, line: line)
        return Tensor(shape: outShape, ints: Array(v[range]))
    }
}

/// Runs a float op from channels `inView` of `input` into channels from `outOffset` of a wider
/// output (see `runSingleOp`) and checks it against `reference`, computed on the viewed channels
/// alone, under `assertFloatClose`'s bound (scaled by a leaky slope of `activation`).
func checkFloatOp(_ op: LayerOp, on backend: Backend, input: Tensor, inView: (offset: Int, channels: Int), outOffset: Int,
                  activation: Activation, reference: ([Float], TensorShape) -> ReferenceKernels.FloatResult,
                  file: StaticString = #filePath, line: UInt = #line) throws {
    let got = try runSingleOp(op, on: backend, input: input, inView: inView, outOffset: outOffset, outExtra: 1,
                              file: file, line: line)
    let h = input.shape.height, w = input.shape.width
    let view = Array(input.floats![inView.offset * h * w..<(inView.offset + inView.channels) * h * w])
    var slope = 1.0
    if case let .leakyReLU(s) = activation { slope = Double(s) }
    assertFloatClose(got.floats!, reference(view, TensorShape(channels: inView.channels, height: h, width: w)), slope: slope,
                     file: file, line: line)
}
