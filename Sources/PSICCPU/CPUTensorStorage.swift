import PSICEngine

/// Where one graph tensor lives on the CPU: a place in one of the prepared graph's slabs
/// (`CPUMemoryPlan`), fixed for the graph's lifetime. Float and integer tensors share the
/// 4-byte element size, so a slab serves both.
struct CPUTensorStorage {
    let shape: TensorShape
    let scalarType: ScalarType
    let raw: UnsafeMutableRawPointer

    var floats: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }
    var ints: UnsafeMutablePointer<Int32> { raw.assumingMemoryBound(to: Int32.self) }

    /// Float pointer to the first element of channel `c`.
    func floats(channel c: Int) -> UnsafeMutablePointer<Float> { floats + c * shape.planeSize }
    func ints(channel c: Int) -> UnsafeMutablePointer<Int32> { ints + c * shape.planeSize }
}
