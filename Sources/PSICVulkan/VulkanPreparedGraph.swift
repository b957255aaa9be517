import CVulkan
import Foundation
import PSICEngine

/// A graph recorded for one Vulkan device: every tensor has a buffer, every node its
/// pipeline, parameters and descriptor set, and the whole graph is one command buffer that
/// each `run` resubmits unchanged. Runs of one prepared graph are serialised (it owns its
/// buffers); use several prepared graphs for concurrent images.
final class VulkanPreparedGraph: PreparedGraph, @unchecked Sendable {
    let graph: Graph
    fileprivate let backend: VulkanBackend
    private var device: VulkanDevice { backend.device }

    private struct NodePlan {
        let name: String
        let flops: Double
        /// Each dispatch with the descriptor set binding its source and destination.
        let dispatches: [(dispatch: KernelDispatch, set: VkDescriptorSet)]
        let reads: BufferRange
        let writes: BufferRange
        /// Keeps the parameter buffer alive as long as the command buffer references it.
        let parameters: VulkanBackend.UploadedParameters
    }

    /// Byte range of a tensor's buffer or a scratch slot touched by a node or dispatch.
    struct BufferRange: Equatable {
        enum Buffer: Equatable {
            case tensor(Int)
            case scratch(Int)
        }
        let buffer: Buffer
        let offset: Int
        let size: Int
        func overlaps(_ o: BufferRange) -> Bool {
            buffer == o.buffer && offset < o.offset + o.size && o.offset < offset + size
        }
    }

    private let tensorBuffers: [VulkanBuffer]
    /// One- and four-component texel views of the tensor buffers (bindings 3 and 5).
    private let tensorViews: [VkBufferView]
    private let tensorQuadViews: [VkBufferView]
    /// Host-visible copies of inputs/outputs when tensor memory is not mappable (discrete GPUs).
    private let stagingBuffers: [Int: VulkanBuffer]
    /// Scratch slots shared by the nodes that need memory between their dispatches
    /// (Winograd convolutions), with one- and four-component texel views.
    private let scratchBuffers: [VulkanBuffer]
    private let scratchViews: [VkBufferView]
    private let nodes: [NodePlan]
    private let descriptorPool: VkDescriptorPool
    private let fence: VkFence
    /// The graph's own command pool: recording happens under `lock`, which is what keeps a pool's
    /// use on one thread at a time (graphs on other threads record into their own pools).
    private let commandPool: VulkanCommandPool
    /// Held for a whole run (or batch run): the graph owns one set of buffers and one pool.
    fileprivate let lock = NSLock()
    private var commandBuffer: VkCommandBuffer?
    private var timedCommandBuffer: VkCommandBuffer?
    private var queryPool: VkQueryPool?

    /// Tensors plus the scratch slots.
    var memoryBytes: Int {
        graph.tensors.reduce(0) { $0 + $1.shape.count * $1.scalarType.byteSize } + scratchBuffers.reduce(0) { $0 + $1.size }
    }

    init(backend: VulkanBackend, graph: Graph) throws {
        self.backend = backend
        self.graph = graph
        let device = backend.device
        let vk = device.vk
        guard !device.isAbandoned else { throw VulkanError.timeout(seconds: device.submissionLimitSeconds) }

        var buffers: [VulkanBuffer] = []
        var views: [VkBufferView] = []
        var quadViews: [VkBufferView] = []
        var staging: [Int: VulkanBuffer] = [:]
        var scratch: [VulkanBuffer] = []
        var scratchViews: [VkBufferView] = []
        var pool: VkDescriptorPool?
        var fence: VkFence?
        // Hand back whatever was acquired if a later step fails.
        var success = false
        defer {
            if !success {
                for v in views + quadViews + scratchViews { device.destroyView(v) }
                for b in buffers + scratch { backend.bufferPool.release(b) }
                for b in staging.values { backend.bufferPool.release(b) }
                if let pool { vk.destroyDescriptorPool(device.handle, pool, nil) }
                if let fence { vk.destroyFence(device.handle, fence, nil) }
            }
        }

        for decl in graph.tensors {
            // Kernels bind whole tensor buffers as storage buffers.
            guard decl.shape.count * decl.scalarType.byteSize <= device.maxStorageBufferRange else {
                throw VulkanError.unsupportedOp(
                    node: decl.name, reason: "tensor \(decl.shape) exceeds the device's storage buffer range of "
                        + "\(device.maxStorageBufferRange) bytes; run images this large on the CPU backend")
            }
            let buffer = try backend.bufferPool.acquire(bytes: decl.shape.count * decl.scalarType.byteSize, kind: .device)
            buffers.append(buffer)
            views.append(try device.makeView(buffer, format: decl.scalarType == .int32 ? VK_FORMAT_R32_SINT : VK_FORMAT_R32_SFLOAT,
                                             elements: decl.shape.count, elementSize: 4))
            quadViews.append(try device.makeView(buffer, format: decl.scalarType == .int32 ? VK_FORMAT_R32G32B32A32_SINT
                                                 : VK_FORMAT_R32G32B32A32_SFLOAT,
                                                 elements: decl.shape.count / 4, elementSize: 16))
        }
        // Pooled buffers hold a previous graph's data; channels of a tensor that no node
        // writes must read as zero, as on every backend.
        let produced = graph.tensors.indices.filter { !graph.tensors[$0].isInput }
        try Self.zero(produced.map { (buffers[$0], graph.tensors[$0].shape.count * 4) }, device: device)
        if !device.deviceMemoryMapped {
            let io = Set(graph.tensors.indices.filter { graph.tensors[$0].isInput } + graph.outputs.map(\.index))
            for t in io {
                let decl = graph.tensors[t]
                staging[t] = try backend.bufferPool.acquire(bytes: decl.shape.count * decl.scalarType.byteSize, kind: .staging)
            }
        }

        // Plan every node first: the scratch slots and descriptor sets depend on all of them.
        var kernels: [NodeKernels] = []
        for node in graph.nodes {
            kernels.append(try backend.plan(node, inOffset: node.input.channelOffset * node.inputShape.planeSize,
                                            outOffset: node.output.channelOffset * node.outputShape.planeSize,
                                            inputElements: graph.tensors[node.input.tensor.index].shape.count))
        }
        // A kernel's grid grows with the image; a device caps each dimension (65535 on many GPUs).
        let cap = device.maxWorkGroupCount
        for (node, k) in zip(graph.nodes, kernels) {
            for d in k.dispatches where d.groups.x > cap.x || d.groups.y > cap.y || d.groups.z > cap.z {
                throw VulkanError.unsupportedOp(
                    node: node.op.name, reason: "its dispatch of \(d.groups.x)×\(d.groups.y)×\(d.groups.z) work groups exceeds "
                        + "the device's limit of \(cap.x)×\(cap.y)×\(cap.z); use the CPU backend")
            }
        }
        var scratchElements: [Int] = []
        for k in kernels {
            for (slot, n) in k.scratchElements.enumerated() {
                if slot == scratchElements.count { scratchElements.append(0) }
                scratchElements[slot] = max(scratchElements[slot], n)
            }
        }
        for n in scratchElements {
            let b = try backend.bufferPool.acquire(bytes: n * 4, kind: .device)
            scratch.append(b)
            scratchViews.append(try device.makeView(b, format: VK_FORMAT_R32_SFLOAT, elements: n, elementSize: 4))
            scratchViews.append(try device.makeView(b, format: VK_FORMAT_R32G32B32A32_SFLOAT, elements: n / 4, elementSize: 16))
        }
        // Rows are padded past the tiles a band writes; zeros there keep the product kernel's
        // spare lanes off NaNs and denormals left by earlier users of the buffer.
        try Self.zero(zip(scratch, scratchElements).map { ($0, $1 * 4) }, device: device)
        // One descriptor set per node and (source, destination) pair its dispatches use.
        let pairsPerNode = kernels.map { k -> [[DispatchBuffer]] in
            var pairs: [[DispatchBuffer]] = []
            for d in k.dispatches where !pairs.contains([d.source, d.destination]) { pairs.append([d.source, d.destination]) }
            return pairs
        }
        let setCount = max(pairsPerNode.reduce(0) { $0 + $1.count }, 1)
        var poolSizes = [VkDescriptorPoolSize(type: VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount: UInt32(setCount * 3)),
                         VkDescriptorPoolSize(type: VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, descriptorCount: UInt32(setCount * 3))]
        var poolInfo = VkDescriptorPoolCreateInfo()
        poolInfo.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO
        poolInfo.maxSets = UInt32(setCount)
        poolInfo.poolSizeCount = UInt32(poolSizes.count)
        try poolSizes.withUnsafeMutableBufferPointer { ps in
            poolInfo.pPoolSizes = UnsafePointer(ps.baseAddress)
            try check(vk.createDescriptorPool(device.handle, &poolInfo, nil, &pool), "vkCreateDescriptorPool")
        }
        fence = try device.createFence()
        let commandPool = try VulkanCommandPool(device: device)

        var plans: [NodePlan] = []
        for (node, k) in zip(graph.nodes, kernels) {
            let inPlane = node.inputShape.planeSize
            let outPlane = node.outputShape.planeSize
            // Buffer, one-component view and four-component view of a dispatch's source or destination.
            func resource(_ b: DispatchBuffer) -> (VulkanBuffer, VkBufferView, VkBufferView) {
                switch b {
                case .nodeInput: let t = node.input.tensor.index; return (buffers[t], views[t], quadViews[t])
                case .nodeOutput: let t = node.output.tensor.index; return (buffers[t], views[t], quadViews[t])
                case let .scratch(i): return (scratch[i], scratchViews[2 * i], scratchViews[2 * i + 1])
                }
            }
            var sets: [[DispatchBuffer]: VkDescriptorSet] = [:]
            for pair in pairsPerNode[plans.count] {
                let set = try Self.allocateSet(device: device, pool: pool!, layout: backend.pipelines.setLayout)
                let src = resource(pair[0]), dst = resource(pair[1])
                Self.writeSet(device: device, set: set, buffers: [src.0, dst.0, k.parameters.buffer],
                              texelViews: [src.1, k.parameters.texelView, src.2])
                sets[pair] = set
            }
            plans.append(NodePlan(
                name: node.op.name,
                flops: node.op.flops(input: node.inputShape, output: node.outputShape),
                dispatches: k.dispatches.map { ($0, sets[[$0.source, $0.destination]]!) },
                reads: BufferRange(buffer: .tensor(node.input.tensor.index), offset: node.input.channelOffset * inPlane * 4,
                                   size: node.input.channels * inPlane * 4),
                writes: BufferRange(buffer: .tensor(node.output.tensor.index), offset: node.output.channelOffset * outPlane * 4,
                                    size: node.output.channels * outPlane * 4),
                parameters: k.parameters))
        }
        tensorBuffers = buffers
        tensorViews = views
        tensorQuadViews = quadViews
        stagingBuffers = staging
        scratchBuffers = scratch
        self.scratchViews = scratchViews
        nodes = plans
        descriptorPool = pool!
        self.fence = fence!
        self.commandPool = commandPool
        success = true
    }

    deinit {
        guard !device.isAbandoned else { return }  // leaked: the hung device may still use it all
        let vk = device.vk
        // The command buffers go with `commandPool`.
        if let queryPool { vk.destroyQueryPool(device.handle, queryPool, nil) }
        vk.destroyDescriptorPool(device.handle, descriptorPool, nil)
        vk.destroyFence(device.handle, fence, nil)
        // Every submission was waited for, so the device no longer uses these buffers.
        for v in tensorViews + tensorQuadViews + scratchViews { device.destroyView(v) }
        for b in tensorBuffers + scratchBuffers { backend.bufferPool.release(b) }
        for b in stagingBuffers.values { backend.bufferPool.release(b) }
    }

    /// Zeroes the first `bytes` of each buffer: on the host where memory is mapped, else in one
    /// submission of fills.
    private static func zero(_ ranges: [(buffer: VulkanBuffer, bytes: Int)], device: VulkanDevice) throws {
        guard !ranges.isEmpty else { return }
        if device.deviceMemoryMapped {
            for r in ranges { memset(r.buffer.mapped!, 0, r.bytes) }
        } else {
            try device.runOnce { cb in
                for r in ranges { device.vk.cmdFillBuffer(cb, r.buffer.handle, 0, VkDeviceSize(r.bytes), 0) }
            }
        }
    }

    private static func allocateSet(device: VulkanDevice, pool: VkDescriptorPool, layout: VkDescriptorSetLayout) throws -> VkDescriptorSet {
        var layoutVar: VkDescriptorSetLayout? = layout
        var set: VkDescriptorSet?
        try withUnsafePointer(to: &layoutVar) { lp in
            var info = VkDescriptorSetAllocateInfo()
            info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO
            info.descriptorPool = pool
            info.descriptorSetCount = 1
            info.pSetLayouts = lp
            try check(device.vk.allocateDescriptorSets(device.handle, &info, &set), "vkAllocateDescriptorSets")
        }
        return set!
    }

    /// Binds whole buffers: views are addressed by element offsets in push constants, which
    /// sidesteps minStorageBufferOffsetAlignment for channel views. A pooled buffer's size is
    /// rounded up past what its tensor needs, so the range stops at the device's storage limit
    /// (every tensor fits within it: checked when the graph is prepared).
    private static func writeSet(device: VulkanDevice, set: VkDescriptorSet, buffers: [VulkanBuffer], texelViews: [VkBufferView]) {
        var infos = buffers.map {
            VkDescriptorBufferInfo(buffer: $0.handle, offset: 0, range: VkDeviceSize(min($0.size, device.maxStorageBufferRange)))
        }
        var views: [VkBufferView?] = texelViews
        infos.withUnsafeMutableBufferPointer { ip in
            views.withUnsafeMutableBufferPointer { vp in
                var writes = (0..<ip.count).map { i -> VkWriteDescriptorSet in
                    var w = VkWriteDescriptorSet()
                    w.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET
                    w.dstSet = set
                    w.dstBinding = UInt32(i)
                    w.descriptorCount = 1
                    w.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER
                    w.pBufferInfo = UnsafePointer(ip.baseAddress! + i)
                    return w
                }
                for j in 0..<vp.count {
                    var w = VkWriteDescriptorSet()
                    w.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET
                    w.dstSet = set
                    w.dstBinding = UInt32(ip.count + j)
                    w.descriptorCount = 1
                    w.descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                    w.pTexelBufferView = UnsafePointer(vp.baseAddress! + j)
                    writes.append(w)
                }
                device.vk.updateDescriptorSets(device.handle, UInt32(writes.count), &writes, 0, nil)
            }
        }
    }

    // MARK: Recording

    private static let computeStage = UInt32(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue)
    private static let transferStage = UInt32(VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue)
    private static let hostStage = UInt32(VK_PIPELINE_STAGE_HOST_BIT.rawValue)
    private static let shaderRead = UInt32(VK_ACCESS_SHADER_READ_BIT.rawValue)
    private static let shaderWrite = UInt32(VK_ACCESS_SHADER_WRITE_BIT.rawValue)

    private func globalBarrier(_ cb: VkCommandBuffer, src: UInt32, srcAccess: UInt32, dst: UInt32, dstAccess: UInt32) {
        var b = VkMemoryBarrier()
        b.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
        b.srcAccessMask = srcAccess
        b.dstAccessMask = dstAccess
        device.vk.cmdPipelineBarrier(cb, src, dst, 0, 1, &b, 0, nil, 0, nil)
    }

    /// Records the graph. `timed`: a timestamp around every node and a full barrier between
    /// nodes, so each interval holds exactly one node's work (otherwise independent nodes
    /// may overlap and their intervals would not mean anything).
    private func record(timed: Bool) throws -> VkCommandBuffer {
        let vk = device.vk
        let cb = try commandPool.allocate()
        var recorded = false
        defer { if !recorded { commandPool.free(cb) } }
        var begin = VkCommandBufferBeginInfo()
        begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        try check(vk.beginCommandBuffer(cb, &begin), "vkBeginCommandBuffer")

        // Inputs: staging -> device (discrete GPUs). Host writes to mapped memory need no
        // barrier: vkQueueSubmit makes them visible.
        for (t, decl) in graph.tensors.enumerated() where decl.isInput {
            if let s = stagingBuffers[t] {
                var region = VkBufferCopy(srcOffset: 0, dstOffset: 0, size: VkDeviceSize(decl.shape.count * 4))
                vk.cmdCopyBuffer(cb, s.handle, tensorBuffers[t].handle, 1, &region)
            }
        }
        // Orders this run after the previous run's shader accesses (WAR/WAW on the same
        // tensors across submissions) and after the input copies.
        globalBarrier(cb, src: Self.computeStage | Self.transferStage,
                      srcAccess: Self.shaderRead | Self.shaderWrite | UInt32(VK_ACCESS_TRANSFER_WRITE_BIT.rawValue),
                      dst: Self.computeStage, dstAccess: Self.shaderRead | Self.shaderWrite)

        if timed, let qp = queryPool {
            vk.cmdResetQueryPool(cb, qp, 0, UInt32(nodes.count + 1))
            vk.cmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, qp, 0)
        }

        // Hazard tracking: writes not yet made visible by a barrier, and reads since the last
        // barrier. Tensors are tracked per node (a node's dispatches touch disjoint parts of its
        // output, so its own accesses join the lists when it ends); scratch slots carry data
        // between the dispatches of one node, so theirs join after each dispatch.
        var pendingWrites: [BufferRange] = []
        var pendingReads: [BufferRange] = []
        func range(_ b: DispatchBuffer, of node: NodePlan) -> BufferRange {
            switch b {
            case .nodeInput: return node.reads
            case .nodeOutput: return node.writes
            case let .scratch(k): return BufferRange(buffer: .scratch(k), offset: 0, size: scratchBuffers[k].size)
            }
        }
        // RAW: reading what an earlier dispatch wrote. WAW: overwriting it. WAR: overwriting
        // what an earlier dispatch still reads (execution dependency only). One barrier covers
        // all, with a buffer barrier per range written before.
        func barrier(reads: BufferRange, writes: BufferRange) {
            let raw = pendingWrites.filter { $0.overlaps(reads) || $0.overlaps(writes) }
            let war = pendingReads.contains { $0.overlaps(writes) }
            guard !raw.isEmpty || war else { return }
            var barriers = raw.map { r -> VkBufferMemoryBarrier in
                var b = VkBufferMemoryBarrier()
                b.sType = VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER
                b.srcAccessMask = Self.shaderWrite
                b.dstAccessMask = Self.shaderRead | Self.shaderWrite
                b.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED
                b.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED
                switch r.buffer {
                case let .tensor(t): b.buffer = tensorBuffers[t].handle
                case let .scratch(k): b.buffer = scratchBuffers[k].handle
                }
                // Descriptors bind whole buffers (views are offsets in push constants), so the
                // barrier covers what they bind, as the validation layer's synchronization
                // checks assume; whether a barrier is needed is still decided by the ranges.
                b.offset = 0
                b.size = VkDeviceSize(VK_WHOLE_SIZE)
                return b
            }
            vk.cmdPipelineBarrier(cb, Self.computeStage, Self.computeStage, 0, 0, nil,
                                  UInt32(barriers.count), &barriers, 0, nil)
            pendingWrites.removeAll { r in raw.contains(r) }
            // The barrier is an execution dependency on all earlier dispatches.
            pendingReads.removeAll()
        }
        for (i, node) in nodes.enumerated() {
            if timed, i > 0 {
                // Orders the node after all earlier work, so its interval holds only its own.
                globalBarrier(cb, src: Self.computeStage, srcAccess: Self.shaderWrite,
                              dst: Self.computeStage, dstAccess: Self.shaderRead | Self.shaderWrite)
                pendingWrites.removeAll()
                pendingReads.removeAll()
            }
            for (d, descriptorSet) in node.dispatches {
                let reads = range(d.source, of: node), writes = range(d.destination, of: node)
                barrier(reads: reads, writes: writes)
                vk.cmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, d.pipeline.handle)
                var set: VkDescriptorSet? = descriptorSet
                vk.cmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, d.pipeline.layout, 0, 1, &set, 0, nil)
                var push = d.push
                vk.cmdPushConstants(cb, d.pipeline.layout, UInt32(VK_SHADER_STAGE_COMPUTE_BIT.rawValue), 0,
                                     UInt32(KernelPushConstants.size), &push)
                vk.cmdDispatch(cb, UInt32(d.groups.x), UInt32(d.groups.y), UInt32(d.groups.z))
                if case .scratch = reads.buffer { pendingReads.append(reads) }
                if case .scratch = writes.buffer { pendingWrites.append(writes) }
            }
            pendingWrites.append(node.writes)
            pendingReads.append(node.reads)
            if timed, let qp = queryPool {
                vk.cmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, qp, UInt32(i + 1))
            }
        }

        // Outputs: make shader writes visible to the copy (staging) or to the host (mapped).
        if stagingBuffers.isEmpty {
            globalBarrier(cb, src: Self.computeStage, srcAccess: Self.shaderWrite,
                          dst: Self.hostStage, dstAccess: UInt32(VK_ACCESS_HOST_READ_BIT.rawValue))
        } else {
            globalBarrier(cb, src: Self.computeStage, srcAccess: Self.shaderWrite,
                          dst: Self.transferStage, dstAccess: UInt32(VK_ACCESS_TRANSFER_READ_BIT.rawValue))
            for t in graph.outputs {
                guard let s = stagingBuffers[t.index] else { continue }
                var region = VkBufferCopy(srcOffset: 0, dstOffset: 0, size: VkDeviceSize(graph.tensors[t.index].shape.count * 4))
                vk.cmdCopyBuffer(cb, tensorBuffers[t.index].handle, s.handle, 1, &region)
            }
            globalBarrier(cb, src: Self.transferStage, srcAccess: UInt32(VK_ACCESS_TRANSFER_WRITE_BIT.rawValue),
                          dst: Self.hostStage, dstAccess: UInt32(VK_ACCESS_HOST_READ_BIT.rawValue))
        }
        try check(vk.endCommandBuffer(cb), "vkEndCommandBuffer")
        recorded = true
        return cb
    }

    private func makeQueryPool() throws -> VkQueryPool {
        var info = VkQueryPoolCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO
        info.queryType = VK_QUERY_TYPE_TIMESTAMP
        info.queryCount = UInt32(nodes.count + 1)
        var pool: VkQueryPool?
        try check(device.vk.createQueryPool(device.handle, &info, nil, &pool), "vkCreateQueryPool")
        return pool!
    }

    // MARK: Running

    func run(inputs: [TensorID: Tensor], collectTimings: Bool) throws -> GraphResult {
        try validateInputs(inputs)
        lock.lock()
        defer { lock.unlock() }
        let timed = collectTimings && device.info.supportsTimestamps
        let cb: VkCommandBuffer
        if timed {
            if queryPool == nil { queryPool = try makeQueryPool() }
            if timedCommandBuffer == nil { timedCommandBuffer = try record(timed: true) }
            cb = timedCommandBuffer!
        } else {
            cb = try untimedCommandBuffer()
        }
        writeInputs(inputs)
        let start = DispatchTime.now().uptimeNanoseconds
        try device.submitAndWait(cb, fence: fence)
        let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let outputs = readOutputs()

        var timings: [KernelTiming] = []
        if collectTimings {
            if timed, let qp = queryPool {
                var stamps = [UInt64](repeating: 0, count: nodes.count + 1)
                try check(device.vk.getQueryPoolResults(device.handle, qp, 0, UInt32(stamps.count), stamps.count * 8,
                                                         &stamps, 8, VkQueryResultFlags(VK_QUERY_RESULT_64_BIT.rawValue | VK_QUERY_RESULT_WAIT_BIT.rawValue)),
                          "vkGetQueryPoolResults")
                for (i, n) in nodes.enumerated() {
                    let ticks = (stamps[i + 1] &- stamps[i]) & device.timestampMask
                    timings.append(KernelTiming(node: n.name, seconds: Double(ticks) * device.timestampPeriod / 1e9, flops: n.flops))
                }
            } else {
                // No timestamps on this queue: report the whole submission as one entry.
                timings.append(KernelTiming(node: "graph", seconds: wall, flops: nodes.reduce(0) { $0 + $1.flops }))
            }
        }
        return GraphResult(outputs: outputs, timings: timings)
    }

    // MARK: Pieces of a run, shared with batch runs (caller holds `lock`)

    fileprivate func untimedCommandBuffer() throws -> VkCommandBuffer {
        if commandBuffer == nil { commandBuffer = try record(timed: false) }
        return commandBuffer!
    }

    /// Copies `inputs` into the input buffers. Only declared inputs are written: anything else
    /// in `inputs` is not ours to overwrite.
    fileprivate func writeInputs(_ inputs: [TensorID: Tensor]) {
        for (id, tensor) in inputs where graph.tensors.indices.contains(id.index) && graph.tensors[id.index].isInput {
            let i = id.index
            let dst = stagingBuffers[i]?.mapped ?? tensorBuffers[i].mapped!
            switch tensor.storage {
            case let .float32(v): v.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            case let .int32(v): v.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
        }
    }

    /// Copies the output buffers out after a finished submission.
    fileprivate func readOutputs() -> [TensorID: Tensor] {
        var outputs: [TensorID: Tensor] = [:]
        for id in graph.outputs {
            let decl = graph.tensors[id.index]
            let src = UnsafeRawPointer(stagingBuffers[id.index]?.mapped ?? tensorBuffers[id.index].mapped!)
            let n = decl.shape.count
            switch decl.scalarType {
            case .float32:
                let v = [Float](unsafeUninitializedCapacity: n) { p, c in
                    p.baseAddress!.update(from: src.assumingMemoryBound(to: Float.self), count: n)
                    c = n
                }
                outputs[id] = Tensor(shape: decl.shape, floats: v)
            case .int32:
                let v = [Int32](unsafeUninitializedCapacity: n) { p, c in
                    p.baseAddress!.update(from: src.assumingMemoryBound(to: Int32.self), count: n)
                    c = n
                }
                outputs[id] = Tensor(shape: decl.shape, ints: v)
            }
        }
        return outputs
    }
}

extension VulkanBackend {
    /// Runs the graphs' pre-recorded command buffers in one vkQueueSubmit with one fence: one
    /// submit-and-wait round trip for the whole batch instead of one per graph. The command
    /// buffers execute in order on the queue (each begins with a barrier on earlier compute
    /// work), so the gain is the per-submission overhead, not kernels overlapping.
    public func runBatch(_ runs: [BatchRun]) throws -> [GraphResult] {
        let graphs = runs.compactMap { $0.graph as? VulkanPreparedGraph }
        // Another backend's graphs, or one graph twice (it owns one set of buffers, so its
        // runs cannot share a submission): run them one by one.
        guard runs.count > 1, graphs.count == runs.count, graphs.allSatisfy({ $0.backend === self }),
              Set(graphs.map { ObjectIdentifier($0) }).count == graphs.count else {
            return try runs.map { try $0.graph.run(inputs: $0.inputs) }
        }
        for (g, r) in zip(graphs, runs) { try g.validateInputs(r.inputs) }
        // Lock in one global order so that two batches sharing graphs cannot deadlock.
        let order = graphs.indices.sorted { ObjectIdentifier(graphs[$0]) < ObjectIdentifier(graphs[$1]) }
        for i in order { graphs[i].lock.lock() }
        defer { for i in order.reversed() { graphs[i].lock.unlock() } }
        var commandBuffers: [VkCommandBuffer] = []
        for (g, r) in zip(graphs, runs) {
            commandBuffers.append(try g.untimedCommandBuffer())
            g.writeInputs(r.inputs)
        }
        let fence = try device.createFence()
        defer { if !device.isAbandoned { device.vk.destroyFence(device.handle, fence, nil) } }
        try device.submitAndWait(commandBuffers, fence: fence)
        return graphs.map { GraphResult(outputs: $0.readOutputs(), timings: []) }
    }
}
