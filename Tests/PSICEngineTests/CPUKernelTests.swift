import XCTest
import CIntGEMM
@testable import PSICCPU
@testable import PSICEngine

/// Every CPU kernel against the naive reference, over odd shapes, strides, kernel sizes and
/// channel views. Float kernels use the summation error bound of `assertFloatClose`; integer
/// kernels must be equal.
final class CPUKernelTests: XCTestCase {
    // One thread and two, each convolution method: the banded, threaded and oneDNN paths must
    // all give the reference results.
    let backends: [CPUBackend] = CPUConvolutionMethod.allCases.flatMap { method in
        [CPUBackend(threads: 1, convolutions: method), CPUBackend(threads: 2, convolutions: method)]
    }

    func testConv2dShapes() throws {
        var rng = TestRandom(seed: 11)
        let cases: [(Int, Int, Int, Int, Int, Int, Activation)] = [
            (3, 8, 5, 2, 17, 23, .none), (5, 3, 3, 1, 9, 7, .relu), (4, 13, 1, 1, 6, 35, .leakyReLU(slope: 0.1)),
            (6, 9, 5, 1, 11, 13, .none), (7, 16, 3, 2, 10, 33, .relu), (2, 5, 1, 2, 7, 7, .none),
            (3, 4, 5, 2, 1, 1, .none), (9, 17, 5, 2, 40, 3, .leakyReLU(slope: 0.2)), (4, 6, 5, 1, 2, 2, .none),
        ]
        for backend in backends {
            for (n, c) in cases.enumerated() {
                let (ci, co, k, s, h, w, act) = c
                let layer = try Conv2dLayer(name: "conv\(n)", inChannels: ci, outChannels: co, kernelSize: k, stride: s,
                                            weights: rng.floats(co * ci * k * k), bias: rng.floats(co), activation: act)
                let extra = n % 3
                let shape = TensorShape(channels: ci + extra, height: h, width: w)
                let x = Tensor(shape: shape, floats: rng.floats(shape.count))
                try checkFloatOp(.conv2d(layer), on: backend, input: x, inView: (extra, ci), outOffset: n % 2, activation: act) {
                    ReferenceKernels.conv2d(layer, input: $0, shape: $1)
                }
            }
        }
    }

    func testConv2dBandsLargerThanBudget() throws {
        // K * width large enough that the im2col matrix is split into several row bands; stride 2
        // also exercises the column-phase split, whose input rows overlap between bands.
        var rng = TestRandom(seed: 12)
        for (stride, height, width) in [(1, 9, 600), (2, 41, 601)] {
            let layer = try Conv2dLayer(name: "wide", inChannels: 64, outChannels: 4, kernelSize: 5, stride: stride,
                                        weights: rng.floats(4 * 64 * 25, -0.1, 0.1), bias: rng.floats(4))
            let shape = TensorShape(channels: 64, height: height, width: width)
            let outWidth = (width - 1) / stride + 1, outHeight = (height - 1) / stride + 1
            XCTAssertLessThan(CPUConv2d.bandBudget / (64 * 25 * outWidth), outHeight, "test must span several bands")
            let x = Tensor(shape: shape, floats: rng.floats(shape.count))
            let got = try runSingleOp(.conv2d(layer), on: CPUBackend(threads: 2, convolutions: .im2col),
                                      input: x, inView: (0, 64))
            assertFloatClose(got.floats!, ReferenceKernels.conv2d(layer, input: x.floats!, shape: shape))
        }
    }

    func testConvTranspose2dShapes() throws {
        var rng = TestRandom(seed: 13)
        let cases: [(Int, Int, Int, Int, Int?, Int?, Int, Int)] = [
            (4, 8, 5, 2, nil, nil, 5, 7), (3, 3, 3, 1, nil, nil, 9, 11), (6, 5, 5, 2, 2, 0, 4, 9),
            (8, 12, 3, 2, nil, nil, 3, 17), (5, 9, 5, 1, nil, nil, 6, 5), (2, 4, 1, 2, 0, 1, 5, 3),
            (3, 7, 5, 2, 1, 1, 1, 1), (4, 3, 3, 2, 0, 0, 6, 4), (3, 5, 5, 2, nil, nil, 1, 1), (2, 3, 5, 2, nil, nil, 1, 2),
            // At least 8 outputs: oneDNN takes these (the rest run col2im on both methods).
            (5, 9, 5, 2, nil, nil, 4, 6), (3, 16, 3, 1, nil, nil, 5, 7), (7, 8, 5, 2, 2, 0, 3, 5),
        ]
        for backend in backends {
            for (n, c) in cases.enumerated() {
                let (ci, co, k, s, p, op, h, w) = c
                let layer = try ConvTranspose2dLayer(name: "deconv\(n)", inChannels: ci, outChannels: co, kernelSize: k,
                                                     stride: s, padding: p, outputPadding: op,
                                                     weights: rng.floats(ci * co * k * k), bias: rng.floats(co),
                                                     activation: n % 2 == 0 ? .none : .relu)
                let shape = TensorShape(channels: ci + 1, height: h, width: w)
                let x = Tensor(shape: shape, floats: rng.floats(shape.count))
                let got = try runSingleOp(.convTranspose2d(layer), on: backend, input: x, inView: (1, ci),
                                          outOffset: n % 2, outExtra: n % 2)
                let view = Array(x.floats![(h * w)...])
                assertFloatClose(got.floats!, ReferenceKernels.convTranspose2d(layer, input: view,
                                                                               shape: TensorShape(channels: ci, height: h, width: w)))
            }
        }
    }

    func testGDN() throws {
        var rng = TestRandom(seed: 14)
        for backend in backends {
            // 23 × 27 pixels: two whole 256-pixel chunks of CPUGDN and a shorter third.
            for (n, (c, h, w, inverse)) in [(8, 5, 7, false), (19, 3, 11, true), (3, 1, 1, false), (5, 23, 27, true)].enumerated() {
                let layer = try GDNLayer(name: "gdn\(n)", channels: c, inverse: inverse,
                                         beta: rng.floats(c, 0.5, 1.5), gamma: rng.floats(c * c, 0, 0.2))
                let shape = TensorShape(channels: c + 2, height: h, width: w)
                let x = Tensor(shape: shape, floats: rng.floats(shape.count, -2, 2))
                let got = try runSingleOp(.gdn(layer), on: backend, input: x, inView: (1, c), outOffset: 1, outExtra: 2)
                let view = Array(x.floats![h * w..<(1 + c) * h * w])
                // Same bound as the Vulkan GDN test: (c+1) terms, then sqrt and divide (a few ulp).
                var ref = ReferenceKernels.gdn(layer, input: view, shape: TensorShape(channels: c, height: h, width: w))
                ref.terms = 4 * (c + 1 + 8)
                assertFloatClose(got.floats!, ref)
            }
        }
    }

    func testOneDNNGDNInBands() throws {
        // Bands of 1, 2 and 3 rows (budgets of 1, 2 and 3 rows of 8 x 9 elements, one below a row)
        // over 7 rows: several passes, a shorter last band, and channel views on both sides.
        var rng = TestRandom(seed: 18)
        let (c, h, w) = (8, 7, 9)
        for inverse in [false, true] {
            let layer = try GDNLayer(name: "gdn", channels: c, inverse: inverse,
                                     beta: rng.floats(c, 0.5, 1.5), gamma: rng.floats(c * c, 0, 0.2))
            let shape = TensorShape(channels: c + 2, height: h, width: w)
            let x = Tensor(shape: shape, floats: rng.floats(shape.count, -2, 2))
            let view = Array(x.floats![h * w..<(1 + c) * h * w])
            var ref = ReferenceKernels.gdn(layer, input: view, shape: TensorShape(channels: c, height: h, width: w))
            ref.terms = 4 * (c + 1 + 8)
            for budget in [c * w - 1, 2 * c * w, 3 * c * w] {
                let backend = CPUBackend(threads: 2, convolutions: .oneDNN, gdnBandElements: budget)
                let rows = OneDNNGDN.bandRows(TensorShape(channels: c, height: h, width: w), channels: c, bandElements: budget)
                XCTAssertEqual(rows, max(1, budget / (c * w)))
                let got = try runSingleOp(.gdn(layer), on: backend, input: x, inView: (1, c), outOffset: 1, outExtra: 2)
                assertFloatClose(got.floats!, ref)
            }
            // The shorter last band shares γ and β with the others instead of copying them.
            let plane = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c * h * w)
            defer { plane.deallocate() }
            let banded = try OneDNNGDN(layer, input: plane, output: plane + c * h * w, shape: TensorShape(channels: c, height: h, width: w),
                                       context: try OneDNNContext(), bandElements: 2 * c * w)
            XCTAssertEqual(banded.ownedBufferCount, 2, "γ and β once")
        }
    }

    /// The unfused product (a binary primitive after the convolution: what oneDNN 2.6 leaves
    /// an Intel Xeon with) computes the same GDN, in whole and in bands; so does the product
    /// fused on every machine (oneDNN's reference kernel on that Xeon, which `psic bench gdn` times).
    func testOneDNNGDNWithTheProductUnfused() throws {
        var rng = TestRandom(seed: 21)
        let (c, h, w) = (16, 5, 13)
        let shape = TensorShape(channels: c, height: h, width: w)
        for inverse in [false, true] {
            let layer = try GDNLayer(name: "gdn", channels: c, inverse: inverse,
                                     beta: rng.floats(c, 0.5, 1.5), gamma: rng.floats(c * c, 0, 0.2))
            let x = rng.floats(shape.count, -2, 2)
            var ref = ReferenceKernels.gdn(layer, input: x, shape: shape)
            ref.terms = 4 * (c + 1 + 8)
            for (budget, product) in [(c * h * w, CPUGDNProduct.unfused), (2 * c * w, .unfused), (c * h * w, .automatic),
                                      (2 * c * w, .fused)] {
                let plane = UnsafeMutablePointer<Float>.allocate(capacity: 2 * shape.count)
                defer { plane.deallocate() }
                plane.update(from: x, count: x.count)
                let gdn = try OneDNNGDN(layer, input: plane, output: plane + shape.count, shape: shape,
                                        context: try OneDNNContext(), bandElements: budget, product: product)
                if product != .automatic { XCTAssertEqual(gdn.productFused, product == .fused, "\(product)") }
                XCTAssertEqual(gdn.implementation.hasSuffix(" + binary_mul"), !gdn.productFused)
                let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(64, gdn.scratchBytes), alignment: 64)
                defer { scratch.deallocate() }
                try gdn.run(threads: 2, scratch: scratch)
                assertFloatClose(Array(UnsafeBufferPointer(start: plane + shape.count, count: shape.count)), ref)
            }
        }
    }

    func testExactGEMMsMatchIntegerProducts() throws {
        // Sizes around the AVX2 kernel's 4x16 blocks and pairs of k, strided B and C; values up
        // to the 16-bit extremes where the sums allow (k <= 2), else weights within ±127.
        var rng = TestRandom(seed: 19)
        for (m, n, k) in [(1, 1, 1), (4, 16, 2), (3, 17, 1), (5, 33, 7), (9, 100, 268), (8, 15, 3), (13, 64, 128)] {
            let wide = k <= 2
            let a = (0..<m * k).map { i in Int16(i == 0 && wide ? -32768 : rng.int(wide ? -32768 : -127, wide ? 32767 : 127)) }
            let ldb = n + 3, ldc = n + 5
            let b = (0..<k * ldb).map { i in Int16(i == 1 ? 32767 : i == 2 ? -32767 : rng.int(-32767, 32767)) }
            var expected = [Int32](repeating: 0, count: m * ldc)
            for i in 0..<m {
                for j in 0..<n {
                    var sum: Int64 = 0
                    for p in 0..<k { sum += Int64(a[i * k + p]) * Int64(b[p * ldb + j]) }
                    expected[i * ldc + j] = Int32(sum)
                }
            }
            for threads in [1, 2] {
                var c = [Int32](repeating: -7, count: m * ldc)
                Int16GEMM.gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: ldb, c: &c, ldc: ldc, threads: threads)
                XCTAssertTrue((0..<m).allSatisfy { i in (0..<n).allSatisfy { c[i * ldc + $0] == expected[i * ldc + $0] } },
                              "int16 GEMM \(m)x\(n)x\(k), \(threads) threads")
                var d = [Double](repeating: -7, count: m * ldc)
                DoubleGEMM.gemm(m: m, n: n, k: k, a: a.map(Double.init), lda: k, b: b.map(Double.init), ldb: ldb, c: &d,
                                ldc: ldc, threads: threads)
                XCTAssertTrue((0..<m).allSatisfy { i in (0..<n).allSatisfy { d[i * ldc + $0] == Double(expected[i * ldc + $0]) } },
                              "double GEMM \(m)x\(n)x\(k), \(threads) threads")
            }
            var portable = [Int32](repeating: -7, count: m * ldc)
            psic_int16_gemm_portable(Int32(m), Int32(n), Int32(k), a, Int32(k), b, Int32(ldb), &portable, Int32(ldc))
            XCTAssertTrue((0..<m).allSatisfy { i in (0..<n).allSatisfy { portable[i * ldc + $0] == expected[i * ldc + $0] } },
                          "portable int16 GEMM \(m)x\(n)x\(k)")
        }
    }

    func testIntConvExact() throws {
        var rng = TestRandom(seed: 15)
        let acts: [IntegerRequantization.IntActivation] = [.none, .relu, .leakyReLU(slopeNumerator: 16), .leakyReLU(slopeNumerator: 256)]
        let cases: [(Bool, Int, Int, Int, Int, Int, Int)] = [
            (false, 5, 9, 3, 1, 7, 9), (false, 4, 8, 5, 2, 13, 10), (false, 3, 6, 1, 1, 5, 5),
            (true, 4, 7, 5, 2, 5, 6), (true, 6, 5, 3, 1, 7, 4), (false, 7, 11, 5, 1, 3, 17), (true, 3, 4, 3, 2, 1, 3),
            (true, 3, 4, 5, 2, 1, 1), (true, 2, 3, 5, 2, 2, 1),  // h_s on a 64-pixel image: 1x1 z
        ]
        for backend in backends {
            for (n, c) in cases.enumerated() {
                let (tr, ci, co, k, s, h, w) = c
                let layer = try randomIntLayer(&rng, name: "int\(n)", transposed: tr, ci: ci, co: co, k: k, s: s,
                                               activation: acts[n % acts.count])
                let shape = TensorShape(channels: ci + 1, height: h, width: w)
                let x = Tensor(shape: shape, ints: (0..<shape.count).map { _ in Int32(rng.int(-1000, 1000)) })
                let got = try runSingleOp(.intConv2d(layer), on: backend, input: x, inView: (1, ci), outOffset: 1, outExtra: 2)
                let ref = ReferenceKernels.intConv2d(layer, input: Array(x.ints![(h * w)...]),
                                                     shape: TensorShape(channels: ci, height: h, width: w))
                XCTAssertEqual(got.ints!, ref, "int layer \(n) (transposed \(tr), k \(k), s \(s))")
            }
            // Inputs past 16 bits take the double-precision GEMM.
            for (n, tr) in [false, true].enumerated() {
                let (ci, co, k, h, w) = (3, 5, 3, 6, 7)
                let layer = try randomIntLayer(&rng, name: "wide\(n)", transposed: tr, ci: ci, co: co, k: k, s: 2,
                                               activation: acts[n], inputBound: 60_000)
                let shape = TensorShape(channels: ci, height: h, width: w)
                let x = Tensor(shape: shape, ints: (0..<shape.count).map { i in i == 0 ? -60_000 : Int32(rng.int(-60_000, 60_000)) })
                let got = try runSingleOp(.intConv2d(layer), on: backend, input: x, inView: (0, ci))
                XCTAssertEqual(got.ints!, ReferenceKernels.intConv2d(layer, input: x.ints!, shape: shape), "wide int layer \(n)")
            }
        }
    }

    func testIntConvBandsLargerThanBudget() throws {
        // Wide images split the integer layers' column matrices into several bands too.
        var rng = TestRandom(seed: 17)
        let conv = try randomIntLayer(&rng, name: "wide", transposed: false, ci: 64, co: 3, k: 5, s: 1, activation: .relu)
        XCTAssertLessThan(CPUConv2d.bandBudget / (64 * 25 * 600), 7, "test must span several bands")
        let deconv = try randomIntLayer(&rng, name: "wide.t", transposed: true, ci: 3, co: 64, k: 5, s: 2, activation: .none)
        XCTAssertLessThan(CPUConv2d.bandBudget / (64 * 25 * 1400), 4, "test must span several bands")
        for (layer, shape) in [(conv, TensorShape(channels: 64, height: 7, width: 600)),
                               (deconv, TensorShape(channels: 3, height: 4, width: 1400))] {
            let x = Tensor(shape: shape, ints: (0..<shape.count).map { _ in Int32(rng.int(-1000, 1000)) })
            let got = try runSingleOp(.intConv2d(layer), on: backends[1], input: x, inView: (0, shape.channels))
            XCTAssertEqual(got.ints!, ReferenceKernels.intConv2d(layer, input: x.ints!, shape: shape), layer.name)
        }
    }

    /// The reference definition itself, on hand-computed values: rounding adds 2^(shift-1)
    /// then shifts arithmetically (floor), leaky multiplies by k/256 with a floor, then clamps.
    func testRequantizationDefinition() {
        let rq = IntegerRequantization(multiplier: [1, 1, 3], shift: [1, 2, 1], activation: .leakyReLU(slopeNumerator: 16),
                                       outputMin: -1000, outputMax: 7)
        XCTAssertEqual(rq.apply(3, channel: 0), 2)       // (3 + 1) >> 1
        XCTAssertEqual(rq.apply(-3, channel: 0), -1)     // (-3 + 1) >> 1 = -1; (-16) >> 8 = -1
        XCTAssertEqual(rq.apply(-2, channel: 1), 0)      // (-2 + 2) >> 2 = 0
        XCTAssertEqual(rq.apply(-3, channel: 1), -1)     // (-1) >> 2 = -1; leaky keeps -1
        XCTAssertEqual(rq.apply(100, channel: 2), 7)     // 150, clamped to 7
        XCTAssertEqual(rq.apply(-200, channel: 2), -19)  // (-599) >> 1 = -300; (-4800) >> 8 = -19
        XCTAssertEqual(rq.apply(Int32.min, channel: 2), -1000) // 64-bit product, then clamp
    }

    /// A graph of one 5x5 stride-2 convolution with random weights: the graph, its input, the layer.
    private func oneConvGraph(_ rng: inout TestRandom, input: TensorShape, outChannels: Int) throws -> (Graph, TensorID, Conv2dLayer) {
        let ci = input.channels
        let layer = try Conv2dLayer(name: "c", inChannels: ci, outChannels: outChannels, kernelSize: 5, stride: 2,
                                    weights: rng.floats(outChannels * ci * 25, -0.1, 0.1), bias: rng.floats(outChannels))
        var g = Graph()
        let x = g.addInput("x", shape: input, type: .float32)
        g.markOutput(try g.append(.conv2d(layer), input: g.whole(x)).tensor)
        return (g, x, layer)
    }

    /// A graph whose tensors need more memory than the machine has free is refused with the
    /// figures when it is prepared, not killed or trapped mid-run.
    func testGraphLargerThanFreeMemoryIsAnError() throws {
        var rng = TestRandom(seed: 5)
        let (g, _, _) = try oneConvGraph(&rng, input: TensorShape(channels: 3, height: 128, width: 128), outChannels: 96)
        let needs = CPUMemoryPlan(g).slabBytes.reduce(0, +)
        XCTAssertGreaterThan(needs, 96 * 64 * 64 * 4, "the output alone")
        let tight = CPUBackend(threads: 2, convolutions: nil, gdnBandElements: 1 << 20, availableMemory: { needs - 1 })
        XCTAssertThrowsError(try tight.prepare(g)) { error in
            // Named "cpu" like every other CPU allocation failure, whatever the thread count.
            XCTAssertEqual(error as? EngineError, .outOfMemory(backend: "cpu", bytes: needs, available: needs - 1))
            XCTAssertTrue("\(error)".contains("free memory, or use a smaller"), "\(error)")
        }
        let enough = CPUBackend(threads: 2, convolutions: nil, gdnBandElements: 1 << 20, availableMemory: { needs })
        XCTAssertNoThrow(try enough.prepare(g))
        let unknown = CPUBackend(threads: 2, convolutions: nil, gdnBandElements: 1 << 20, availableMemory: { nil })
        XCTAssertNoThrow(try unknown.prepare(g))
        // This machine reports its free memory, and it is more than nothing.
        XCTAssertGreaterThan(try XCTUnwrap(HostMemory.available()), 0)
    }

    /// Graphs prepared at the same moment check the free memory one after another (each then
    /// takes its memory before the next one looks), not all against the same figure.
    func testConcurrentPreparesCheckFreeMemoryOneAtATime() throws {
        var rng = TestRandom(seed: 6)
        let (g, _, _) = try oneConvGraph(&rng, input: TensorShape(channels: 3, height: 32, width: 32), outChannels: 8)
        let inside = OverlapCounter()
        let backend = CPUBackend(threads: 1, convolutions: nil, gdnBandElements: 1 << 20, availableMemory: {
            inside.enter()
            Thread.sleep(forTimeInterval: 0.02)  // a window in which an unserialised check would overlap
            inside.leave()
            return nil
        })
        let failures = OverlapCounter()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            do { _ = try backend.prepare(g) } catch { failures.enter() }
        }
        XCTAssertEqual(failures.calls, 0, "a prepare failed")
        XCTAssertEqual(inside.calls, 4)
        XCTAssertEqual(inside.mostAtOnce, 1, "two graphs checked the free memory at the same time")
    }

    /// A graph that has passed its check but not yet filled its memory still counts against the
    /// next graph's check (the free-memory figure falls only as pages are touched), and its
    /// claim ends when it is released; a refusal names what was left after the claims.
    func testMemoryClaimsCountUntilReleased() throws {
        let claims = CPUMemoryClaims()
        try claims.claim(bytes: 600, available: { 1000 })
        XCTAssertEqual(claims.outstanding, 600)
        XCTAssertThrowsError(try claims.claim(bytes: 500, available: { 1000 })) { error in
            XCTAssertEqual(error as? EngineError, .outOfMemory(backend: "cpu", bytes: 500, available: 400))
        }
        XCTAssertEqual(claims.outstanding, 600, "a refused claim takes nothing")
        try claims.claim(bytes: 400, available: { 1000 })
        // More claimed than the figure now reports (pages touched meanwhile): nothing is left.
        XCTAssertThrowsError(try claims.claim(bytes: 1, available: { 900 })) { error in
            XCTAssertEqual(error as? EngineError, .outOfMemory(backend: "cpu", bytes: 1, available: 0))
        }
        try claims.claim(bytes: 1 << 40, available: { nil })  // unknown free memory admits any claim
        claims.release(bytes: 1 << 40)
        claims.release(bytes: 600)
        try claims.claim(bytes: 500, available: { 1000 })
        claims.release(bytes: 400)
        claims.release(bytes: 500)
        XCTAssertEqual(claims.outstanding, 0)
    }

    /// Prepared graphs release their claims: after preparing (and failing to prepare) graphs,
    /// nothing stays claimed. Each backend has claims of its own, so other tests' graphs
    /// (prepared on the process-wide claims) cannot touch the count.
    func testPreparedGraphsReleaseTheirClaims() throws {
        var rng = TestRandom(seed: 7)
        let (g, _, _) = try oneConvGraph(&rng, input: TensorShape(channels: 3, height: 32, width: 32), outChannels: 8)
        let claims = CPUMemoryClaims()
        let backend = CPUBackend(threads: 1, convolutions: nil, gdnBandElements: 1 << 20, availableMemory: { 1 << 40 }, claims: claims)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in _ = try? backend.prepare(g) }
        let refused = CPUMemoryClaims()
        XCTAssertThrowsError(try CPUBackend(threads: 1, convolutions: nil, gdnBandElements: 1 << 20, availableMemory: { 1 },
                                            claims: refused).prepare(g))
        XCTAssertEqual(claims.outstanding, 0)
        XCTAssertEqual(refused.outstanding, 0)
        // A claim still outstanding counts against the next graph of the same claims.
        try claims.claim(bytes: (1 << 40) - 100, available: { 1 << 40 })
        XCTAssertThrowsError(try backend.prepare(g)) { error in
            guard case EngineError.outOfMemory(_, _, let available) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(available, 100)
        }
        claims.release(bytes: (1 << 40) - 100)
        XCTAssertNoThrow(try backend.prepare(g))
    }

    /// An integer graph prepared once runs again and again on new inputs, each run exact: the
    /// buffers its layers keep from prepare carry nothing over between runs.
    func testPreparedIntegerLayersRunRepeatedly() throws {
        var rng = TestRandom(seed: 19)
        let layers = [
            try randomIntLayer(&rng, name: "t", transposed: true, ci: 4, co: 6, k: 5, s: 2, activation: .none),
            // Bounds that admit the previous layer's outputs (so these two take the Double GEMM).
            try randomIntLayer(&rng, name: "c", transposed: false, ci: 6, co: 5, k: 3, s: 1, activation: .relu, inputBound: 60_000),
            try randomIntLayer(&rng, name: "p", transposed: false, ci: 5, co: 3, k: 1, s: 1, activation: .leakyReLU(slopeNumerator: 16),
                               inputBound: 60_000),
        ]
        let shape = TensorShape(channels: 4, height: 5, width: 7)
        var g = Graph()
        let x = g.addInput("x", shape: shape, type: .int32)
        var v = g.whole(x)
        for l in layers { v = try g.append(.intConv2d(l), input: v) }
        g.markOutput(v.tensor)
        for backend in backends {
            let prepared = try backend.prepare(g)
            for round in 0..<3 {
                let input = (0..<shape.count).map { _ in Int32(rng.int(-1000, 1000)) }
                var expected = input, s = shape
                for l in layers {
                    expected = ReferenceKernels.intConv2d(l, input: expected, shape: s)
                    s = LayerOp.intConv2d(l).outputShape(for: s)!
                }
                let got = try prepared.run(inputs: [x: Tensor(shape: shape, ints: input)]).outputs[v.tensor]!
                XCTAssertEqual(got.ints!, expected, "\(backend.name), run \(round)")
            }
        }
    }

    /// The plane form the CPU backend runs equals the reference element by element, for every
    /// activation, at the Int32 extremes, shifts 1 and 62, and clamps on either side of zero.
    func testRequantizationPlaneMatchesDefinition() {
        var rng = TestRandom(seed: 41)
        let activations: [IntegerRequantization.IntActivation] = [.none, .relu, .leakyReLU(slopeNumerator: 0),
                                                                  .leakyReLU(slopeNumerator: 77), .leakyReLU(slopeNumerator: 256)]
        let clamps: [(Int32, Int32)] = [(-32768, 32767), (5, 900), (-900, -5), (Int32.min, Int32.max)]
        let extremes: [Int32] = [Int32.min, Int32.min + 1, -1, 0, 1, Int32.max - 1, Int32.max]
        for activation in activations {
            for (lo, hi) in clamps {
                let rq = IntegerRequantization(multiplier: [1, 1 << 30, -(1 << 20), 12345, Int32.max],
                                               shift: [1, 62, 31, 17, 40], activation: activation, outputMin: lo, outputMax: hi)
                for c in 0..<5 {
                    // With these shifts no value reaches 2^55 before a leaky slope (the reference would trap).
                    var values = extremes + (0..<61).map { _ in Int32(rng.int(Int(Int32.min), Int(Int32.max))) }
                    let expected = values.map { rq.apply($0, channel: c) }
                    values.withUnsafeMutableBufferPointer { rq.apply($0.baseAddress!, count: $0.count, channel: c) }
                    XCTAssertEqual(values, expected, "\(activation) [\(lo), \(hi)] channel \(c)")
                }
            }
        }
    }

    func testGraphPreparedOnOneThreadRunsOnAnother() throws {
        // oneDNN's default scratchpad is per thread, sized where a primitive is created: a
        // server prepares on one thread and runs on another. 96 channels on a 2x2 input make
        // oneDNN pick its GEMM convolution, which needs a scratchpad.
        var rng = TestRandom(seed: 17)
        let (g, x, layer) = try oneConvGraph(&rng, input: TensorShape(channels: 96, height: 2, width: 2), outChannels: 96)
        let input = Tensor(shape: g.shape(of: x), floats: rng.floats(96 * 4))
        nonisolated(unsafe) let prepared = try CPUBackend(threads: 2, convolutions: .oneDNN).prepare(g)
        nonisolated(unsafe) var got: [Float]?
        nonisolated(unsafe) var failure: Error?
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            do { got = try prepared.run(inputs: [x: input]).outputs[g.outputs[0]]?.floats } catch { failure = error }
            done.signal()
        }
        thread.start()
        done.wait()
        XCTAssertNil(failure)
        assertFloatClose(got ?? [], ReferenceKernels.conv2d(layer, input: input.floats!, shape: input.shape))
    }

    func testWholeTransformsMatchReference() throws {
        var rng = TestRandom(seed: 16)
        let n = 8
        func conv(_ name: String, _ ci: Int, _ co: Int) throws -> LayerOp {
            .conv2d(try Conv2dLayer(name: name, inChannels: ci, outChannels: co, kernelSize: 5, stride: 2,
                                    weights: rng.floats(co * ci * 25, -0.2, 0.2), bias: rng.floats(co, -0.1, 0.1)))
        }
        func deconv(_ name: String, _ ci: Int, _ co: Int) throws -> LayerOp {
            .convTranspose2d(try ConvTranspose2dLayer(name: name, inChannels: ci, outChannels: co, kernelSize: 5, stride: 2,
                                                      weights: rng.floats(co * ci * 25, -0.2, 0.2), bias: rng.floats(co, -0.1, 0.1)))
        }
        func gdn(_ name: String, _ inverse: Bool) throws -> LayerOp {
            .gdn(try GDNLayer(name: name, channels: n, inverse: inverse, beta: rng.floats(n, 0.5, 1.5), gamma: rng.floats(n * n, 0, 0.1)))
        }
        let analysis = [try conv("a0", 3, n), try gdn("a1", false), try conv("a2", n, n), try gdn("a3", false),
                        try conv("a4", n, n), try gdn("a5", false), try conv("a6", n, 12)]
        let synthesis = [try deconv("s0", 12, n), try gdn("s1", true), try deconv("s2", n, n), try gdn("s3", true),
                         try deconv("s4", n, n), try gdn("s5", true), try deconv("s6", n, 3)]
        for (ops, inShape) in [(analysis, TensorShape(channels: 3, height: 48, width: 40)),
                               (synthesis, TensorShape(channels: 12, height: 3, width: 2))] {
            var g = Graph()
            let x = g.addInput("x", shape: inShape, type: .float32)
            var v = g.whole(x)
            for op in ops { v = try g.append(op, input: v) }
            g.markOutput(v.tensor)
            let input = Tensor(shape: inShape, floats: rng.floats(inShape.count))
            let ref = ReferenceKernels.run(g, inputs: [x: input])[v.tensor]!.floats!
            for method in CPUConvolutionMethod.allCases {
                let prepared = try CPUBackend(threads: 2, convolutions: method).prepare(g)
                let got = try prepared.run(inputs: [x: input]).outputs[v.tensor]!.floats!
                // Seven layers of fp32 rounding: each layer's error bound is relative to its term
                // magnitudes; values here are O(1) with O(100)-term sums, so 1e-4 absolute is ~100x
                // the accumulated bound yet far below the O(0.1) error of any wrong tap.
                let worst = zip(got, ref).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-4, "\(method): whole transform differs from the reference by \(worst)")
                // oneDNN runs every conv and GDN, and the transposed convs with >= 8 outputs; even
                // output heights let each of those run as 4 stride-1 phase convolutions.
                let taken = (prepared as! CPUPreparedGraph).oneDNNImplementations
                XCTAssertEqual(taken.count, method == .oneDNN ? (inShape.channels == 3 ? 7 : 6) : 0, "\(method)")
                let phased = taken.values.filter { $0.hasSuffix("(4 phases)") }.count
                XCTAssertEqual(phased, method == .oneDNN && inShape.channels != 3 ? 3 : 0, "\(taken)")
            }
        }
    }
}

/// A random integer layer with extreme multipliers and shifts (64-bit product, rounding and
/// arithmetic shifts of negative values all matter).
func randomIntLayer(_ rng: inout TestRandom, name: String, transposed: Bool, ci: Int, co: Int, k: Int, s: Int,
                    activation: IntegerRequantization.IntActivation, inputBound: Int32 = 1000) throws -> IntConv2dLayer {
    let weights = (0..<ci * co * k * k).map { _ in Int16(rng.int(-300, 300)) }
    let bias = (0..<co).map { _ in Int32(rng.int(-100_000, 100_000)) }
    let mult = (0..<co).map { c in c == 0 ? Int32.max : c == 1 ? Int32.min + 1 : Int32(rng.int(-2_000_000_000, 2_000_000_000)) }
    let shift = (0..<co).map { c in Int32(c == 2 ? 62 : c == 3 ? 1 : rng.int(20, 40)) }
    let q = IntegerRequantization(multiplier: mult, shift: shift, activation: activation, outputMin: -50_000, outputMax: 60_000)
    return try IntConv2dLayer(name: name, transposed: transposed, inChannels: ci, outChannels: co, kernelSize: k,
                              stride: s, weights: weights, bias: bias, inputBound: inputBound, requantization: q)
}

/// Counts callers inside a section and the most that were ever inside at once.
private final class OverlapCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var now = 0
    private(set) var mostAtOnce = 0
    private(set) var calls = 0

    func enter() {
        lock.lock()
        now += 1
        calls += 1
        mostAtOnce = max(mostAtOnce, now)
        lock.unlock()
    }

    func leave() {
        lock.lock()
        now -= 1
        lock.unlock()
    }
}
