import XCTest
import CVulkan
@testable import PSICEngine
@testable import PSICVulkan

/// One backend for the whole test run: creating a device compiles nothing, but each
/// pipeline compiles on first use (LLVM on lavapipe), and sharing the backend shares them.
enum SharedVulkan {
    static let backend: Result<VulkanBackend, Error> = Result { try VulkanBackend() }

    /// The backend, or an XCTSkip when this machine has no Vulkan loader, driver or device.
    /// Any other failure is a test failure.
    static func get() throws -> VulkanBackend {
        switch backend {
        case let .success(b): return b
        case let .failure(e as VulkanError):
            switch e {
            case .loaderNotFound, .noDriver, .noComputeDevice:
                throw XCTSkip("no Vulkan device: \(e)")
            default: throw e
            }
        case let .failure(e): throw e
        }
    }
}

/// Float kernels are compared with the exact (Double) reference under the standard bound for
/// recursive fp32 summation: |computed - exact| <= n * u * sum|terms| (u = 2^-24 unit
/// roundoff, n terms, Higham's gamma_n), which holds for any summation order and with or
/// without fused multiply-add, so it cannot fail on a correct kernel on any GPU. We allow
/// 2n u to cover the final rounding and the activation; a wrong tap or a missing term
/// misses by about one |term|, which is orders of magnitude above this.
func assertFloatClose(_ got: [Float], _ ref: ReferenceKernels.FloatResult, slope: Double = 1,
                      file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, ref.values.count, file: file, line: line)
    let u = pow(2.0, -24.0)
    var failures = 0
    for i in got.indices {
        let tol = 2 * Double(ref.terms + 2) * u * ref.magnitude[i] * max(1, slope) + 1e-30
        let err = abs(Double(got[i]) - ref.values[i])
        if !(err <= tol) {
            failures += 1
            if failures <= 5 {
                XCTFail("element \(i): got \(got[i]), expected \(ref.values[i]) (error \(err) > bound \(tol))",
                        file: file, line: line)
            }
        }
    }
    if failures > 5 { XCTFail("\(failures) elements out of tolerance", file: file, line: line) }
}

final class VulkanKernelTests: XCTestCase {
    // The direct kernels: on lavapipe 5x5/2 layers would otherwise take the Winograd route,
    // which VulkanWinogradTests checks under its own bound.
    override func setUp() { WinogradConvolution.setDefaultMethod(.direct) }
    override func tearDown() { WinogradConvolution.setDefaultMethod(.automatic) }

    /// Register blockings the conv kernels are run under besides the device default (on
    /// lavapipe: the subgroup kernels for float conv2d and transposed conv): the GPU default,
    /// an odd one whose tiles never divide the test shapes, and an odd subgroup one (one 8-lane
    /// subgroup per workgroup). Kept few: every (tiling, layer geometry) is a pipeline to compile.
    static let tilings: [ConvTiling?] = [
        nil,
        ConvTiling(outputChannels: 8, pixels: 4, groupX: 16, groupY: 4, rows: 1),
        ConvTiling(outputChannels: 4, pixels: 3, groupX: 4, groupY: 3, rows: 3),
        ConvTiling(outputChannels: 4, pixels: 3, groupX: 4, groupY: 2, rows: 3, subgroupWeights: true),
    ]

    func forEachTiling(tilings: [ConvTiling?] = tilings, _ body: () throws -> Void) rethrows {
        defer { ConvTiling.setOverride(nil) }
        for t in tilings {
            ConvTiling.setOverride(t)
            try body()
        }
    }

    /// Runs a single-op graph on Vulkan (see `runSingleOp`).
    func runSingle(_ op: LayerOp, input: Tensor, inView: (offset: Int, channels: Int),
                   outOffset: Int = 0, outExtra: Int = 0) throws -> Tensor {
        try runSingleOp(op, on: try SharedVulkan.get(), input: input, inView: inView, outOffset: outOffset, outExtra: outExtra)
    }

    func testConv2dShapes() throws {
        let info = try SharedVulkan.get().deviceInfo
        if info.type == .cpu {
            // Otherwise the default and the subgroup tilings below silently test conv2d.comp.
            XCTAssertTrue(info.subgroupSize == 8 && info.supportsSubgroupShuffle,
                          "lavapipe should run conv2d as conv2d_subgroup (8-lane subgroups with shuffles)")
        }
        try forEachTiling(conv2dShapes)
    }

    func conv2dShapes() throws {
        var rng = TestRandom(seed: 1)
        // (in, out, k, stride, h, w, activation): odd sizes, sizes off the workgroup tile,
        // channel counts off the 8-channel block, 1x1 images.
        let cases: [(Int, Int, Int, Int, Int, Int, Activation)] = [
            (3, 8, 5, 2, 17, 23, .none), (5, 3, 3, 1, 9, 7, .relu), (4, 13, 1, 1, 6, 35, .leakyReLU(slope: 0.1)),
            (6, 9, 5, 1, 11, 13, .none), (7, 16, 3, 2, 10, 33, .relu), (2, 5, 1, 2, 7, 7, .none),
            (3, 4, 5, 2, 1, 1, .none), (9, 17, 5, 2, 40, 3, .leakyReLU(slope: 0.2)),
            (3, 6, 5, 2, 12, 16, .none), (5, 8, 3, 1, 6, 8, .relu),  // rows of a multiple of 4: quad fetches
        ]
        for (n, c) in cases.enumerated() {
            let (ci, co, k, s, h, w, act) = c
            let layer = try Conv2dLayer(name: "conv\(n)", inChannels: ci, outChannels: co, kernelSize: k, stride: s,
                                        weights: rng.floats(co * ci * k * k), bias: rng.floats(co), activation: act)
            let extra = n % 3
            let shape = TensorShape(channels: ci + extra, height: h, width: w)
            let x = Tensor(shape: shape, floats: rng.floats(shape.count))
            try checkFloatOp(.conv2d(layer), on: try SharedVulkan.get(), input: x, inView: (extra, ci), outOffset: n % 2,
                             activation: act) {
                ReferenceKernels.conv2d(layer, input: $0, shape: $1)
            }
        }
    }

    func testConvTranspose2dShapes() throws {
        let info = try SharedVulkan.get().deviceInfo
        if info.type == .cpu {
            XCTAssertTrue(info.subgroupSize == 8 && info.supportsSubgroupShuffle,
                          "lavapipe should run transposed convs as conv_transpose2d_subgroup")
        }
        try forEachTiling(convTranspose2dShapes)
    }

    func convTranspose2dShapes() throws {
        var rng = TestRandom(seed: 2)
        // (in, out, k, stride, padding, outputPadding, h, w)
        let cases: [(Int, Int, Int, Int, Int?, Int?, Int, Int)] = [
            (4, 8, 5, 2, nil, nil, 5, 7), (3, 3, 3, 1, nil, nil, 9, 11), (6, 5, 5, 2, 2, 0, 4, 9),
            (8, 12, 3, 2, nil, nil, 3, 17), (5, 9, 5, 1, nil, nil, 6, 5), (2, 4, 1, 2, 0, 1, 5, 3),
            (3, 7, 5, 2, 1, 1, 1, 1), (4, 3, 3, 2, 0, 0, 6, 4), (5, 6, 5, 2, nil, nil, 3, 8), (3, 4, 3, 1, nil, nil, 5, 4),
        ]
        for (n, c) in cases.enumerated() {
            let (ci, co, k, s, p, op, h, w) = c
            let layer = try ConvTranspose2dLayer(name: "deconv\(n)", inChannels: ci, outChannels: co, kernelSize: k,
                                                 stride: s, padding: p, outputPadding: op,
                                                 weights: rng.floats(ci * co * k * k), bias: rng.floats(co),
                                                 activation: n % 2 == 0 ? .none : .relu)
            let shape = TensorShape(channels: ci, height: h, width: w)
            let x = Tensor(shape: shape, floats: rng.floats(shape.count))
            let got = try runSingle(.convTranspose2d(layer), input: x, inView: (0, ci), outOffset: n % 2, outExtra: n % 2)
            assertFloatClose(got.floats!, ReferenceKernels.convTranspose2d(layer, input: x.floats!, shape: shape))
        }
    }

    func testGDN() throws {
        _ = try SharedVulkan.get()
        var rng = TestRandom(seed: 3)
        for (n, (c, h, w, inverse)) in [(8, 5, 7, false), (19, 3, 11, true), (3, 1, 1, false), (32, 6, 6, true)].enumerated() {
            // Effective GDN parameters are non-negative (gamma) and positive (beta).
            let layer = try GDNLayer(name: "gdn\(n)", channels: c, inverse: inverse,
                                     beta: rng.floats(c, 0.5, 1.5), gamma: rng.floats(c * c, 0, 0.2))
            let shape = TensorShape(channels: c + 2, height: h, width: w)
            let x = Tensor(shape: shape, floats: rng.floats(shape.count, -2, 2))
            let got = try runSingle(.gdn(layer), input: x, inView: (1, c), outOffset: 1, outExtra: 2)
            let view = Array(x.floats![h * w..<(1 + c) * h * w])
            // Relative bound: the normalisation sums c+1 non-negative terms (error <= (c+1) u
            // relative), then sqrt and divide add a few ulp each (Vulkan allows 3 ulp for
            // sqrt, 2.5 for division); 4x margin.
            let ref = ReferenceKernels.gdn(layer, input: view, shape: TensorShape(channels: c, height: h, width: w))
            var r = ref
            r.terms = 4 * (c + 1 + 8)
            assertFloatClose(got.floats!, r)
        }
    }

    func testIntConv2dExact() throws {
        _ = try SharedVulkan.get()
        // The integer tiling is one fixed default on every device, plus the odd one.
        try forEachTiling(tilings: [nil, Self.tilings[2]], intConv2dExact)
    }

    func intConv2dExact() throws {
        var rng = TestRandom(seed: 4)
        let acts: [IntegerRequantization.IntActivation] = [.none, .relu, .leakyReLU(slopeNumerator: 26), .leakyReLU(slopeNumerator: 256)]
        let cases: [(Bool, Int, Int, Int, Int, Int, Int)] = [
            (false, 5, 9, 3, 1, 7, 9), (false, 4, 8, 5, 2, 13, 10), (false, 3, 6, 1, 1, 5, 5),
            (true, 4, 7, 5, 2, 5, 6), (true, 6, 5, 3, 1, 7, 4), (false, 7, 11, 5, 1, 3, 17), (true, 3, 4, 3, 2, 1, 3),
            (false, 4, 6, 5, 2, 6, 8), (true, 5, 4, 5, 2, 3, 4),
        ]
        for (n, c) in cases.enumerated() {
            let (tr, ci, co, k, s, h, w) = c
            let layer = try randomIntLayer(&rng, name: "int\(n)", transposed: tr, ci: ci, co: co, k: k, s: s,
                                         activation: acts[n % acts.count])
            let shape = TensorShape(channels: ci + 1, height: h, width: w)
            let x = Tensor(shape: shape, ints: (0..<shape.count).map { _ in Int32(rng.int(-1000, 1000)) })
            let got = try runSingle(.intConv2d(layer), input: x, inView: (1, ci), outOffset: 1, outExtra: 2)
            let view = Array(x.ints!.suffix(from: h * w))
            let ref = ReferenceKernels.intConv2d(layer, input: view, shape: TensorShape(channels: ci, height: h, width: w))
            XCTAssertEqual(got.ints!, ref, "int layer \(n) (transposed: \(tr), k \(k), s \(s))")
        }
    }

    /// Concatenation along channels through views: two convs write halves of one tensor,
    /// a third reads the whole, with hazards (RAW, WAR, WAW) the barriers must order.
    func testGraphWithViewsAndHazards() throws {
        let backend = try SharedVulkan.get()
        var rng = TestRandom(seed: 5)
        var g = Graph()
        let x = g.addInput("x", shape: TensorShape(channels: 4, height: 9, width: 10), type: .float32)
        let cat = g.addTensor("cat", shape: TensorShape(channels: 6, height: 9, width: 10), type: .float32)
        func conv(_ name: String, _ ci: Int, _ co: Int) throws -> Conv2dLayer {
            try Conv2dLayer(name: name, inChannels: ci, outChannels: co, kernelSize: 3, stride: 1,
                            weights: rng.floats(co * ci * 9), bias: rng.floats(co))
        }
        try g.append(.conv2d(conv("a", 2, 3)), input: TensorView(tensor: x, channelOffset: 0, channels: 2),
                     output: TensorView(tensor: cat, channelOffset: 0, channels: 3))
        try g.append(.conv2d(conv("b", 2, 3)), input: TensorView(tensor: x, channelOffset: 2, channels: 2),
                     output: TensorView(tensor: cat, channelOffset: 3, channels: 3))
        let mid = try g.append(.conv2d(conv("c", 6, 5)), input: g.whole(cat))
        // Overwrites half of `cat` after `c` read it (WAR), then `e` reads the mix (RAW).
        try g.append(.conv2d(conv("d", 5, 3)), input: mid, output: TensorView(tensor: cat, channelOffset: 0, channels: 3))
        let out = try g.append(.gdn(GDNLayer(name: "e", channels: 6, inverse: false, beta: rng.floats(6, 0.5, 1),
                                             gamma: rng.floats(36, 0, 0.1))), input: g.whole(cat))
        g.markOutput(out.tensor)
        g.markOutput(mid.tensor)
        let input = Tensor(shape: g.shape(of: x), floats: rng.floats(g.shape(of: x).count))
        let prepared = try backend.prepare(g)
        let ref = ReferenceKernels.run(g, inputs: [x: input])
        for _ in 0..<2 {  // a second run reuses the recorded command buffer
            let r = try prepared.run(inputs: [x: input])
            for t in [out.tensor, mid.tensor] {
                let a = r.outputs[t]!.floats!, b = ref[t]!.floats!
                let scale = b.map { abs($0) }.max()!
                for i in a.indices { XCTAssertEqual(a[i], b[i], accuracy: 1e-5 * scale, "tensor \(t) element \(i)") }
            }
        }
    }

    func testTimingsAndReuse() throws {
        let backend = try SharedVulkan.get()
        var rng = TestRandom(seed: 6)
        let layer = try Conv2dLayer(name: "t", inChannels: 3, outChannels: 8, kernelSize: 5, stride: 2,
                                    weights: rng.floats(600), bias: rng.floats(8))
        func graph() throws -> (Graph, TensorID) {
            var g = Graph()
            let x = g.addInput("x", shape: TensorShape(channels: 3, height: 32, width: 32), type: .float32)
            g.markOutput(try g.append(.conv2d(layer), input: g.whole(x)).tensor)
            return (g, x)
        }
        let (g, x) = try graph()
        let input = Tensor(shape: g.shape(of: x), floats: rng.floats(3 * 32 * 32))
        var first: Tensor?
        do {
            let p = try backend.prepare(g)
            let r = try p.run(inputs: [x: input], collectTimings: true)
            XCTAssertEqual(r.timings.count, 1)
            XCTAssertEqual(r.timings[0].node, "t")
            XCTAssertGreaterThan(r.timings[0].seconds, 0)
            XCTAssertEqual(r.timings[0].flops, 2 * 8 * 16 * 16 * 75)
            first = r.outputs[g.outputs[0]]
            // Timed and untimed recordings compute the same thing.
            XCTAssertEqual(try p.run(inputs: [x: input]).outputs[g.outputs[0]], first)
        }
        // The first prepared graph is gone: its buffers are idle in the pool and reused.
        let idle = backend.bufferPool.idleCount
        XCTAssertGreaterThan(idle, 0)
        let p2 = try backend.prepare(try graph().0)
        XCTAssertLessThan(backend.bufferPool.idleCount, idle)
        XCTAssertEqual(try p2.run(inputs: [x: input]).outputs[g.outputs[0]], first)
    }

    /// A buffer the device cannot hold is `EngineError.outOfDeviceMemory` (which the codec's
    /// graph pool and the server treat like host memory running out), not a bare VkResult; and
    /// the buffer pool frees its idle buffers and retries before giving up.
    func testDeviceOutOfMemoryIsAnEngineErrorAndFreesIdleBuffers() throws {
        let backend = try SharedVulkan.get()
        let device = backend.device
        // Larger than any buffer this device allows (lavapipe: 4 GiB), or than its memory.
        let huge = 1 << 40
        XCTAssertThrowsError(try VulkanBuffer(device: device, kind: .device, size: huge)) { error in
            // The driver may refuse the buffer or its memory; either call is named, with the size.
            guard case let .outOfDeviceMemory(backend, bytes, call)? = error as? EngineError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(backend, "vulkan")
            XCTAssertEqual(bytes, huge)
            XCTAssertTrue(call == "vkCreateBuffer" || call == "vkAllocateMemory", call ?? "no call")
            XCTAssertTrue("\(error)".contains("--backend cpu"), "\(error)")
        }
        // A device that is full whenever the pool holds an idle buffer.
        var pool: BufferPool!
        var attempts = 0
        pool = BufferPool(device: device) { device, kind, size in
            attempts += 1
            if pool.idleCount > 0 { throw EngineError.outOfDeviceMemory(backend: "vulkan", bytes: size) }
            return try VulkanBuffer(device: device, kind: kind, size: size)
        }
        pool.release(try pool.acquire(bytes: 1 << 20, kind: .device))
        XCTAssertEqual(pool.idleCount, 1)
        let other = try pool.acquire(bytes: 3 << 20, kind: .device)  // another size class: no reuse
        XCTAssertEqual(attempts, 3, "one failed attempt, then one after freeing")
        XCTAssertEqual(pool.idleCount, 0)
        XCTAssertGreaterThanOrEqual(other.size, 3 << 20)
        // With nothing idle to free, the error reaches the caller after one attempt.
        let full = BufferPool(device: device) { _, _, size in throw EngineError.outOfDeviceMemory(backend: "vulkan", bytes: size) }
        XCTAssertThrowsError(try full.acquire(bytes: 1 << 20, kind: .device)) { error in
            XCTAssertEqual((error as? EngineError)?.isOutOfMemory, true)
        }
    }

    /// Any driver call that runs out of memory (a descriptor pool, a command buffer, a
    /// pipeline: not only buffers) is `EngineError.outOfDeviceMemory` naming the call, so the
    /// graph pool's free-and-retry and the server's 503 apply to it; other failures stay
    /// `VulkanError.callFailed`.
    func testDriverOutOfMemoryInAnyCallIsAnEngineError() throws {
        for result in [VK_ERROR_OUT_OF_DEVICE_MEMORY, VK_ERROR_OUT_OF_HOST_MEMORY] {
            XCTAssertThrowsError(try check(result, "vkCreateDescriptorPool")) { error in
                XCTAssertEqual(error as? EngineError,
                               .outOfDeviceMemory(backend: "vulkan", bytes: nil, call: "vkCreateDescriptorPool"))
                XCTAssertEqual((error as? EngineError)?.isOutOfMemory, true)
                XCTAssertTrue("\(error)".contains("ran out of memory in vkCreateDescriptorPool"), "\(error)")
                XCTAssertTrue("\(error)".contains("--backend cpu"), "\(error)")
            }
        }
        XCTAssertThrowsError(try check(VK_ERROR_DEVICE_LOST, "vkQueueSubmit")) { error in
            XCTAssertEqual(error as? VulkanError,
                           .callFailed(function: "vkQueueSubmit", result: VK_ERROR_DEVICE_LOST.rawValue))
        }
        XCTAssertNoThrow(try check(VK_SUCCESS, "vkQueueSubmit"))
    }

    /// The discrete-GPU path (tensors in unmapped memory, staging copies, buffer fills,
    /// transfer barriers), exercised on whatever device this is.
    func testStagingPath() throws {
        _ = try SharedVulkan.get()
        let backend = try VulkanBackend(device: nil, forceStaging: true)
        XCTAssertFalse(backend.device.deviceMemoryMapped)
        var rng = TestRandom(seed: 7)
        let layer = try randomIntLayer(&rng, name: "staged", transposed: false, ci: 3, co: 5, k: 3, s: 1, activation: .relu)
        let conv = try Conv2dLayer(name: "staged.f", inChannels: 2, outChannels: 3, kernelSize: 5, stride: 2,
                                   weights: rng.floats(150), bias: rng.floats(3))
        var g = Graph()
        let xi = g.addInput("xi", shape: TensorShape(channels: 3, height: 7, width: 6), type: .int32)
        let xf = g.addInput("xf", shape: TensorShape(channels: 2, height: 9, width: 8), type: .float32)
        let yi = try g.append(.intConv2d(layer), input: g.whole(xi))
        let cat = g.addTensor("cat", shape: TensorShape(channels: 4, height: 5, width: 4), type: .float32)
        try g.append(.conv2d(conv), input: g.whole(xf), output: TensorView(tensor: cat, channelOffset: 1, channels: 3))
        g.markOutput(yi.tensor)
        g.markOutput(cat)
        let inputs: [TensorID: Tensor] = [
            xi: Tensor(shape: g.shape(of: xi), ints: (0..<126).map { _ in Int32(rng.int(-1000, 1000)) }),
            xf: Tensor(shape: g.shape(of: xf), floats: rng.floats(144)),
        ]
        let ref = ReferenceKernels.run(g, inputs: inputs)
        let r = try backend.prepare(g).run(inputs: inputs)
        XCTAssertEqual(r.outputs[yi.tensor], ref[yi.tensor])
        let a = r.outputs[cat]!.floats!, b = ref[cat]!.floats!
        for i in a.indices { XCTAssertEqual(a[i], b[i], accuracy: 1e-5 * (1 + abs(b[i]))) }
    }

    /// A device whose limits a graph passes refuses it with an error naming the node, before
    /// anything runs: more work groups than a dispatch may have, or more parameters than one
    /// texel view reaches (both would otherwise compute garbage or crash the driver).
    func testGraphsPastTheDeviceLimitsAreRefused() throws {
        _ = try SharedVulkan.get()
        var rng = TestRandom(seed: 9)
        let conv = try Conv2dLayer(name: "limits.conv", inChannels: 3, outChannels: 8, kernelSize: 3, stride: 1,
                                   weights: rng.floats(216), bias: rng.floats(8))
        var g = Graph()
        let x = g.addInput("x", shape: TensorShape(channels: 3, height: 64, width: 64), type: .float32)
        g.markOutput(try g.append(.conv2d(conv), input: g.whole(x)).tensor)
        let input = Tensor(shape: g.shape(of: x), floats: rng.floats(3 * 64 * 64))

        let groups = try VulkanBackend(device: nil, forceStaging: false, limits: .init(workGroupCount: (2, 2, 2)))
        XCTAssertThrowsError(try groups.prepare(g)) { e in
            guard case let VulkanError.unsupportedOp(node, reason) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(node, "limits.conv")
            XCTAssertTrue(reason.contains("work groups"), reason)
        }
        let texels = try VulkanBackend(device: nil, forceStaging: false, limits: .init(texelBufferElements: 16))
        XCTAssertThrowsError(try texels.prepare(g)) { e in
            guard case let VulkanError.unsupportedOp(node, reason) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(node, "limits.conv")
            XCTAssertTrue(reason.contains("texel"), reason)
        }
        // Within the limits the same graph runs.
        XCTAssertNotNil(try VulkanBackend(device: nil, forceStaging: false).prepare(g).run(inputs: [x: input]).outputs.first)
    }

    /// A submission that outlives the limit (a hung device) ends in `VulkanError.timeout`, and the
    /// backend then refuses all work: the device may still hold the buffers, which must not be
    /// handed to the next graph. (A 1 ns limit: no real submission finishes within it.)
    func testASubmissionPastTheLimitAbandonsTheDevice() throws {
        _ = try SharedVulkan.get()
        var rng = TestRandom(seed: 10)
        let conv = try Conv2dLayer(name: "hang.conv", inChannels: 16, outChannels: 16, kernelSize: 5, stride: 1,
                                   weights: rng.floats(16 * 16 * 25), bias: rng.floats(16))
        var g = Graph()
        let x = g.addInput("x", shape: TensorShape(channels: 16, height: 96, width: 96), type: .float32)
        g.markOutput(try g.append(.conv2d(conv), input: g.whole(x)).tensor)
        let input = Tensor(shape: g.shape(of: x), floats: rng.floats(16 * 96 * 96))
        let backend = try VulkanBackend(device: nil, forceStaging: false, limits: .init(submissionSeconds: 1e-9))
        let prepared = try backend.prepare(g)
        XCTAssertThrowsError(try prepared.run(inputs: [x: input])) { e in
            guard case VulkanError.timeout = e else { return XCTFail("\(e)") }
        }
        XCTAssertTrue(backend.device.isAbandoned)
        XCTAssertThrowsError(try prepared.run(inputs: [x: input]), "nothing more is submitted")
        XCTAssertThrowsError(try backend.prepare(g), "nor prepared")
        // Wait for lavapipe to finish the abandoned work before the test's objects are leaked,
        // so that it does not run on into the next test.
        _ = backend.device.vk.deviceWaitIdle(backend.device.handle)
    }

    /// Inputs read as storage buffers (the path for tensors too large for texel views).
    func testStorageBufferInputs() throws {
        _ = try SharedVulkan.get()
        let backend = try VulkanBackend(device: nil, forceStaging: false, storageInputs: true)
        var rng = TestRandom(seed: 8)
        let ops: [LayerOp] = [
            .conv2d(try Conv2dLayer(name: "s.conv", inChannels: 3, outChannels: 6, kernelSize: 5, stride: 2,
                                    weights: rng.floats(450), bias: rng.floats(6))),
            .gdn(try GDNLayer(name: "s.gdn", channels: 6, inverse: false, beta: rng.floats(6, 0.5, 1),
                              gamma: rng.floats(36, 0, 0.1))),
            .convTranspose2d(try ConvTranspose2dLayer(name: "s.deconv", inChannels: 6, outChannels: 4, kernelSize: 5,
                                                      stride: 2, weights: rng.floats(600), bias: rng.floats(4))),
        ]
        var g = Graph()
        let x = g.addInput("x", shape: TensorShape(channels: 3, height: 11, width: 16), type: .float32)
        var v = g.whole(x)
        for op in ops { v = try g.append(op, input: v) }
        g.markOutput(v.tensor)
        let input = Tensor(shape: g.shape(of: x), floats: rng.floats(3 * 11 * 16))
        let got = try backend.prepare(g).run(inputs: [x: input]).outputs[v.tensor]!.floats!
        let ref = ReferenceKernels.run(g, inputs: [x: input])[v.tensor]!.floats!
        let scale = ref.map { abs($0) }.max()!
        for i in got.indices { XCTAssertEqual(got[i], ref[i], accuracy: 1e-5 * scale) }

        let layer = try randomIntLayer(&rng, name: "s.int", transposed: true, ci: 3, co: 5, k: 5, s: 2, activation: .none)
        var gi = Graph()
        let xi = gi.addInput("xi", shape: TensorShape(channels: 3, height: 4, width: 8), type: .int32)
        let yi = try gi.append(.intConv2d(layer), input: gi.whole(xi))
        gi.markOutput(yi.tensor)
        let xin = Tensor(shape: gi.shape(of: xi), ints: (0..<96).map { _ in Int32(rng.int(-1000, 1000)) })
        XCTAssertEqual(try backend.prepare(gi).run(inputs: [xi: xin]).outputs[yi.tensor],
                       ReferenceKernels.run(gi, inputs: [xi: xin])[yi.tensor])
    }

    func testBadInputIsRejected() throws {
        let backend = try SharedVulkan.get()
        var g = Graph()
        let x = g.addInput("x", shape: TensorShape(channels: 3, height: 4, width: 4), type: .float32)
        let layer = try Conv2dLayer(name: "c", inChannels: 3, outChannels: 2, kernelSize: 1, stride: 1,
                                    weights: [Float](repeating: 1, count: 6), bias: [0, 0])
        g.markOutput(try g.append(.conv2d(layer), input: g.whole(x)).tensor)
        let p = try backend.prepare(g)
        XCTAssertThrowsError(try p.run(inputs: [:]))
        XCTAssertThrowsError(try p.run(inputs: [x: Tensor(shape: TensorShape(channels: 3, height: 4, width: 5),
                                                          floats: [Float](repeating: 0, count: 60))]))
    }

    func testDeviceListing() throws {
        let backend = try SharedVulkan.get()
        let devices = try VulkanBackend.availableDevices()
        XCTAssertFalse(devices.isEmpty)
        XCTAssertTrue(devices.contains { $0.name == backend.deviceInfo.name })
        XCTAssertNil(VulkanBackend.unavailableReason())
        XCTAssertThrowsError(try VulkanBackend(device: .name("no such device \(UInt64.random(in: 0...UInt64.max))")))
    }
}
