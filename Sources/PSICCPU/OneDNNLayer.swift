import COneDNN
import PSICEngine

/// A layer run by oneDNN primitives, set up once per graph node: the steps (reorders and the
/// layer's primitives) it runs in order, and what it owns.
///
/// oneDNN's JIT kernels want channel-blocked tensors (8 channels innermost on AVX2) while the
/// graph keeps planar NCHW tensors, so layers reorder in and out. The blocked buffers are not
/// owned: the layers of a graph run one at a time, so they share one scratch area
/// (`scratchBytes`) that the caller passes to `run`.
class OneDNNLayer {
    /// oneDNN's name for the implementation it chose (e.g. `jit:avx2`).
    var implementation = ""
    /// Bytes of scratch `run` needs: the blocked tensors, then the primitives' scratchpad.
    var scratchBytes: Int { tensorScratchBytes + scratchpadBytes }
    /// Scratch taken by blocked tensors (64-byte aligned slots).
    private var tensorScratchBytes = 0
    /// The largest scratchpad of the layer's primitives (one runs at a time, so they share it).
    private var scratchpadBytes = 0
    /// Memory objects of the primitives' scratchpads, placed after the tensors at `run`.
    private var scratchpads: [dnnl_memory_t] = []
    let context: OneDNNContext
    /// Blocked tensors placed in the caller's scratch at `run`: memory and byte offset.
    private var scratchMemories: [(memory: dnnl_memory_t, offset: Int)] = []
    private var steps: [(primitive: dnnl_primitive_t, args: [dnnl_exec_arg_t])] = []
    /// When not empty, what `run` executes instead of every step once: ranges of steps, each
    /// after re-pointing some memory objects (the bands of a banded layer).
    private var passes: [Pass] = []
    private var primitives: [dnnl_primitive_t] = []
    private var memories: [dnnl_memory_t] = []
    private var buffers: [UnsafeMutableRawPointer] = []

    /// Buffers the layer owns (weights, biases), for tests.
    var ownedBufferCount: Int { buffers.count }

    init(context: OneDNNContext) {
        self.context = context
    }

    deinit {
        for p in primitives { dnnl_primitive_destroy(p) }
        for m in memories { dnnl_memory_destroy(m) }
        for b in buffers { b.deallocate() }
    }

    /// Runs the layer on up to `threads` OpenMP threads, with its blocked tensors in `scratch`
    /// (at least `scratchBytes`, 64-byte aligned).
    func run(threads: Int, scratch: UnsafeMutableRawPointer) throws {
        for (memory, offset) in scratchMemories {
            try check(dnnl_memory_set_data_handle(memory, scratch + offset), "memory_set_data_handle")
        }
        for memory in scratchpads {
            try check(dnnl_memory_set_data_handle(memory, scratch + tensorScratchBytes), "memory_set_data_handle")
        }
        // The thread count is a per-calling-thread OpenMP setting, so it is set on every call.
        omp_set_num_threads(Int32(threads))
        if passes.isEmpty {
            try execute(steps.indices)
        }
        for pass in passes {
            for (memory, pointer) in pass.handles {
                try check(dnnl_memory_set_data_handle(memory, pointer), "memory_set_data_handle")
            }
            try execute(pass.steps)
        }
        try check(dnnl_stream_wait(context.stream), "stream_wait")
    }

    private func execute(_ range: Range<Int>) throws {
        for step in steps[range] {
            try check(step.args.withUnsafeBufferPointer {
                dnnl_primitive_execute(step.primitive, context.stream, Int32($0.count), $0.baseAddress)
            }, "primitive_execute")
        }
    }

    /// A run of `steps` after pointing each memory object of `handles` at its buffer.
    struct Pass {
        var steps: Range<Int>
        var handles: [(memory: dnnl_memory_t, pointer: UnsafeMutableRawPointer)]
    }

    /// Steps added so far (where the next pass's range starts).
    var stepCount: Int { steps.count }

    /// Makes `run` execute these passes, in order, instead of every step once.
    func addPass(_ pass: Pass) {
        passes.append(pass)
    }

    /// A memory object over `handle`, or over a new buffer this object owns (filled from
    /// `copying` when given).
    func makeMemory(_ desc: UnsafePointer<dnnl_memory_desc_t>, handle: UnsafeMutableRawPointer?,
                            copying values: [Float]? = nil) throws -> dnnl_memory_t {
        var pointer = handle
        if pointer == nil {
            let bytes = max(64, dnnl_memory_desc_get_size(desc))
            let buffer = try CPUMemory.allocateZeroed(bytes: bytes)
            buffers.append(buffer)
            if let values {
                values.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
            pointer = buffer
        }
        var memory: dnnl_memory_t?
        try check(dnnl_memory_create(&memory, desc, context.engine, pointer), "memory_create")
        memories.append(memory!)
        return memory!
    }

    /// A memory object whose buffer is the caller's scratch at `run` (at byte `offset`, or in a new
    /// slot after the others); none until then.
    func makeScratchMemory(_ desc: UnsafePointer<dnnl_memory_desc_t>, at offset: Int? = nil) throws -> dnnl_memory_t {
        try makeScratchSlot(desc, at: offset).memory
    }

    /// `makeScratchMemory` and the byte offset it placed the memory at.
    func makeScratchSlot(_ desc: UnsafePointer<dnnl_memory_desc_t>,
                           at offset: Int? = nil) throws -> (memory: dnnl_memory_t, offset: Int) {
        var memory: dnnl_memory_t?
        try check(dnnl_memory_create(&memory, desc, context.engine, nil), "memory_create(scratch)")
        memories.append(memory!)
        let start = offset ?? tensorScratchBytes
        scratchMemories.append((memory!, start))
        tensorScratchBytes = max(tensorScratchBytes, start + (dnnl_memory_desc_get_size(desc) + 63) / 64 * 64)
        return (memory!, start)
    }

    /// Attributes every primitive of the layer is created with: the scratchpad is ours
    /// (`dnnl_scratchpad_mode_user`). In oneDNN's default mode the scratchpad is a per-thread
    /// buffer sized when a primitive is created, so a primitive created on one thread and run on
    /// another (the server's engine thread, any Swift concurrency thread) wrote through a null
    /// pointer.
    static func attributes() throws -> dnnl_primitive_attr_t {
        var attr: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&attr), "primitive_attr_create")
        do {
            try check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "primitive_attr_set_scratchpad_mode")
        } catch {
            dnnl_primitive_attr_destroy(attr)
            throw error
        }
        return attr!
    }

    /// Creates the primitive of `pd` and adds its step with `args`, plus its scratchpad.
    func addStep(_ pd: dnnl_primitive_desc_t, args: [dnnl_exec_arg_t]) throws {
        var primitive: dnnl_primitive_t?
        try check(dnnl_primitive_create(&primitive, pd), "primitive_create")
        primitives.append(primitive!)
        var args = args
        if let padDesc = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0),
           case let bytes = dnnl_memory_desc_get_size(padDesc), bytes > 0 {
            var memory: dnnl_memory_t?
            try check(dnnl_memory_create(&memory, padDesc, context.engine, nil), "memory_create(scratchpad)")
            memories.append(memory!)
            scratchpads.append(memory!)
            scratchpadBytes = max(scratchpadBytes, (bytes + 63) / 64 * 64)
            args.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: memory!))
        }
        steps.append((primitive!, args))
    }

    private func reorderDesc(from: dnnl_memory_t, to: dnnl_memory_t) throws -> dnnl_primitive_desc_t {
        var fromDesc: UnsafePointer<dnnl_memory_desc_t>?, toDesc: UnsafePointer<dnnl_memory_desc_t>?
        try check(dnnl_memory_get_memory_desc(from, &fromDesc), "memory_get_memory_desc")
        try check(dnnl_memory_get_memory_desc(to, &toDesc), "memory_get_memory_desc")
        let attr = try Self.attributes()
        defer { dnnl_primitive_attr_destroy(attr) }
        var pd: dnnl_primitive_desc_t?
        try check(dnnl_reorder_primitive_desc_create(&pd, fromDesc, context.engine, toDesc, context.engine, attr),
                  "reorder_primitive_desc_create")
        return pd!
    }

    func addReorder(from: dnnl_memory_t, to: dnnl_memory_t) throws {
        let pd = try reorderDesc(from: from, to: to)
        defer { dnnl_primitive_desc_destroy(pd) }
        try addStep(pd, args: [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to)])
    }

    /// Reorders once, now (weights into the kernel's layout).
    func reorderNow(from: dnnl_memory_t, to: dnnl_memory_t) throws {
        let pd = try reorderDesc(from: from, to: to)
        defer { dnnl_primitive_desc_destroy(pd) }
        var primitive: dnnl_primitive_t?
        try check(dnnl_primitive_create(&primitive, pd), "primitive_create(reorder)")
        defer { dnnl_primitive_destroy(primitive) }
        var args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to)]
        var pad: UnsafeMutableRawPointer?
        var padMemory: dnnl_memory_t?
        defer { if let padMemory { dnnl_memory_destroy(padMemory) }; pad?.deallocate() }
        if let padDesc = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0),
           case let bytes = dnnl_memory_desc_get_size(padDesc), bytes > 0 {
            pad = .allocate(byteCount: bytes, alignment: 64)
            try check(dnnl_memory_create(&padMemory, padDesc, context.engine, pad), "memory_create(scratchpad)")
            args.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: padMemory))
        }
        try check(args.withUnsafeBufferPointer {
            dnnl_primitive_execute(primitive, context.stream, Int32($0.count), $0.baseAddress)
        }, "primitive_execute(reorder)")
        try check(dnnl_stream_wait(context.stream), "stream_wait")
    }
}
