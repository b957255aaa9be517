import PSICEngine

/// The memory of one graph tensor on the CPU, allocated once per prepared graph and reused by
/// every run. Float and integer tensors share the 4-byte element size, so one raw buffer serves both.
final class CPUTensorStorage {
    let shape: TensorShape
    let scalarType: ScalarType
    let raw: UnsafeMutableRawPointer

    init(shape: TensorShape, scalarType: ScalarType) {
        self.shape = shape
        self.scalarType = scalarType
        raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, shape.count) * 4, alignment: 64)
        raw.initializeMemory(as: UInt32.self, repeating: 0, count: shape.count)
    }

    deinit { raw.deallocate() }

    var floats: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }
    var ints: UnsafeMutablePointer<Int32> { raw.assumingMemoryBound(to: Int32.self) }

    /// Float pointer to the first element of channel `c`.
    func floats(channel c: Int) -> UnsafeMutablePointer<Float> { floats + c * shape.planeSize }
    func ints(channel c: Int) -> UnsafeMutablePointer<Int32> { ints + c * shape.planeSize }
}
