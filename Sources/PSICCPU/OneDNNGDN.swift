import COneDNN
import Foundation
import PSICEngine

/// GDN / IGDN in oneDNN: `y = x · (β + γ·x²)^(∓½)`. The input is reordered into the kernel's
/// blocked layout and squared into a second buffer; a 1×1 convolution with weights γ and bias β
/// runs on the squares with two fused post-ops, the power (GDN) or square root (IGDN), then the
/// product with the blocked input; the result is reordered back. Where oneDNN has only its
/// reference kernel for the fused product (2.6 on avx512_core, e.g. an Intel Xeon) the product
/// runs as a binary primitive after the convolution instead.
///
/// GDN is pointwise in space, so it runs in bands of rows: the three blocked copies (input,
/// squares, output) hold one band, not the whole tensor, which bounds the layer's scratch
/// whatever the image size (at 2304×1536 the unbanded copies were ~1 GB of a 2 GB encode).
/// The planar band is a strided view of the tensor; the last band may be shorter and gets its
/// own primitives.
final class OneDNNGDN: OneDNNLayer {
    /// Elements of one band's blocked copy (a band is at least one row): 2^20 (4 MiB, so the
    /// three copies stay in cache), or `$PSIC_CPU_GDN_BAND_ELEMENTS` for measuring others.
    static let defaultBandElements = ProcessInfo.processInfo.environment["PSIC_CPU_GDN_BAND_ELEMENTS"]
        .flatMap(Int.init).map { max(1, $0) } ?? 1 << 20

    /// Rows per band for `shape` and a band budget of `bandElements`.
    static func bandRows(_ shape: TensorShape, channels: Int, bandElements: Int) -> Int {
        max(1, min(shape.height, bandElements / max(1, channels * shape.width)))
    }

    /// Whether the product with the input is fused into the convolution (false where oneDNN
    /// offers only its reference kernel for that and `product` is `.automatic`, or when the
    /// caller asked not to fuse).
    private(set) var productFused = true
    /// Where the product runs, as asked.
    private let product: CPUGDNProduct

    /// `product: .unfused` runs the product as its own primitive whatever oneDNN offers (what an
    /// Intel Xeon gets), so tests cover that path on every machine; `.fused` keeps it fused even
    /// on oneDNN's reference kernel, so that kernel can be measured against the unfused path.
    init(_ l: GDNLayer, input: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
         shape: TensorShape, context: OneDNNContext, bandElements: Int = OneDNNGDN.defaultBandElements,
         product: CPUGDNProduct = .automatic) throws {
        self.product = product
        super.init(context: context)
        productFused = product != .unfused
        let rows = Self.bandRows(shape, channels: l.channels, bandElements: bandElements)
        let full = shape.height / rows, tail = shape.height % rows
        let bands = try addBands(l, rows: rows, starts: (0..<full).map { $0 * rows }, input: input, output: output,
                                 shape: shape, placedBy: nil)
        if tail > 0 {
            _ = try addBands(l, rows: tail, starts: [full * rows], input: input, output: output, shape: shape,
                             placedBy: bands)
        }
    }

    /// What the first band shape set up that a shorter tail band reuses.
    private struct Bands {
        /// Scratch offsets of the blocked copies.
        var scratchOffsets: [Int]
        /// γ in the primitive's layout, and that layout.
        var weights: dnnl_memory_t
        var weightDesc: dnnl_memory_desc_t
        var beta: dnnl_memory_t
    }

    /// Primitives for bands of `rows` rows and one pass per band start row. The blocked copies go
    /// to scratch at the offsets of `placedBy` (the first, largest band shape places them), and
    /// γ and β are shared with it where the layouts agree.
    private func addBands(_ l: GDNLayer, rows: Int, starts: [Int], input: UnsafeMutablePointer<Float>,
                          output: UnsafeMutablePointer<Float>, shape: TensorShape,
                          placedBy earlier: Bands?) throws -> Bands {
        let scratchOffsets = earlier?.scratchOffsets
        let c = Int64(l.channels)
        let dims: [Int64] = [1, c, Int64(rows), Int64(shape.width)]
        let plane = Int64(shape.planeSize), width = Int64(shape.width)
        let weightDims: [Int64] = [c, c, 1, 1]
        var planar = dnnl_memory_desc_t(), biasDesc = dnnl_memory_desc_t(), userWeights = dnnl_memory_desc_t()
        var anySrc = dnnl_memory_desc_t(), anyDst = dnnl_memory_desc_t(), anyWeights = dnnl_memory_desc_t()
        // A band of NCHW rows: channel stride is the whole plane.
        try check(dnnl_memory_desc_init_by_strides(&planar, 4, dims, dnnl_f32, [c * plane, plane, width, 1]),
                  "memory_desc_init(planar band)")
        try check(dnnl_memory_desc_init_by_tag(&biasDesc, 1, [c], dnnl_f32, dnnl_x), "memory_desc_init(beta)")
        try check(dnnl_memory_desc_init_by_tag(&userWeights, 4, weightDims, dnnl_f32, dnnl_oihw), "memory_desc_init(gamma)")
        try check(dnnl_memory_desc_init_by_tag(&anySrc, 4, dims, dnnl_f32, dnnl_format_tag_any), "memory_desc_init(src any)")
        try check(dnnl_memory_desc_init_by_tag(&anyDst, 4, dims, dnnl_f32, dnnl_format_tag_any), "memory_desc_init(dst any)")
        try check(dnnl_memory_desc_init_by_tag(&anyWeights, 4, weightDims, dnnl_f32, dnnl_format_tag_any),
                  "memory_desc_init(gamma any)")

        // The product's operand must be in the kernel's own layout: given the planar input,
        // oneDNN fell back to its GEMM convolution at ~3 GFLOP/s. So a first descriptor without
        // that post-op finds the layout, and the second uses it for the operand and for the
        // squares it reads. The squares' layout must be fixed, not left to oneDNN: they are
        // written by the square primitive in this layout, and on an Intel Xeon (avx512_core,
        // AMX) the second descriptor otherwise chose a planar source and read them scrambled.
        let probe = try Self.primitiveDesc(&anySrc, &anyWeights, &biasDesc, &anyDst, inverse: l.inverse,
                                           operand: nil, context: context)
        var blocked = dnnl_primitive_desc_query_md(probe, dnnl_query_dst_md, 0)!.pointee
        dnnl_primitive_desc_destroy(probe)
        // oneDNN 2.6's 1×1 kernel on avx512_core (an Intel Xeon) takes no per-element product
        // post-op there and falls back to its reference convolution, 120–160× slower at N = 96
        // (`psic bench gdn`, docs/design.md): then the product runs as its own binary primitive
        // after the fast convolution, unless `.fused` asks for the reference kernel to measure it.
        var pd = try Self.primitiveDesc(&blocked, &anyWeights, &biasDesc, &anyDst, inverse: l.inverse,
                                        operand: &blocked, context: context)
        let fused = productFused && (product == .fused || !Self.implementation(pd).hasPrefix("ref"))
        productFused = fused
        if !fused {
            dnnl_primitive_desc_destroy(pd)
            pd = try Self.primitiveDesc(&blocked, &anyWeights, &biasDesc, &anyDst, inverse: l.inverse,
                                        operand: nil, context: context)
        }
        defer { dnnl_primitive_desc_destroy(pd) }
        if implementation.isEmpty {
            implementation = Self.implementation(pd) + (fused ? "" : " + binary_mul")
        }

        // Pointed at each band by its pass.
        let inputMemory = try makeMemory(&planar, handle: UnsafeMutableRawPointer(input))
        let outputMemory = try makeMemory(&planar, handle: UnsafeMutableRawPointer(output))
        let weightDesc = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)!
        let weightMemory: dnnl_memory_t
        if var earlierDesc = earlier?.weightDesc, dnnl_memory_desc_equal(weightDesc, &earlierDesc) != 0 {
            weightMemory = earlier!.weights
        } else {
            weightMemory = try makeMemory(weightDesc, handle: nil)
            try l.gamma.withUnsafeBufferPointer { g in
                var userWeightMemory: dnnl_memory_t?
                try check(dnnl_memory_create(&userWeightMemory, &userWeights, context.engine,
                                             UnsafeMutableRawPointer(mutating: g.baseAddress!)), "memory_create(gamma)")
                defer { dnnl_memory_destroy(userWeightMemory) }
                try reorderNow(from: userWeightMemory!, to: weightMemory)
            }
        }
        let betaMemory = try earlier?.beta ?? makeMemory(&biasDesc, handle: nil, copying: l.beta)

        let first = stepCount
        var placed: [Int] = []
        func scratch(_ desc: UnsafePointer<dnnl_memory_desc_t>) throws -> dnnl_memory_t {
            let (memory, offset) = try makeScratchSlot(desc, at: scratchOffsets.flatMap { placed.count < $0.count ? $0[placed.count] : nil })
            placed.append(offset)
            return memory
        }
        // The input in the kernel's layout (the product's operand), and its squares.
        let blockedInput = try scratch(&blocked)
        try addReorder(from: inputMemory, to: blockedInput)
        let srcDesc = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0)!
        guard dnnl_memory_desc_equal(srcDesc, &blocked) != 0 else {
            throw EngineError.backendFailure(backend: "cpu", reason: "oneDNN GDN: the convolution changed the layout of its squares")
        }
        let squares = try scratch(&blocked)
        var squareDesc = dnnl_eltwise_desc_t()
        try check(dnnl_eltwise_forward_desc_init(&squareDesc, dnnl_forward_inference, dnnl_eltwise_square, &blocked, 0, 0),
                  "eltwise_forward_desc_init(square)")
        try addOperation(&squareDesc, "square", args: [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: blockedInput),
                                                       dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: squares)])

        let dstDesc = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0)!
        let direct = dnnl_memory_desc_equal(dstDesc, &planar) != 0
        let dstMemory = direct ? outputMemory : try scratch(dstDesc)
        var convArgs = [
            dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: squares),
            dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: weightMemory),
            dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: betaMemory),
            dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: dstMemory),
        ]
        if fused {
            // The product is the last post-op (index 1 for IGDN, 2 for GDN): its operand is that
            // index's SRC_1 argument.
            let productIndex: Int32 = l.inverse ? 1 : 2
            let productOperand = Int32(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE) * (productIndex + 1) | Int32(DNNL_ARG_SRC_1)
            convArgs.append(dnnl_exec_arg_t(arg: productOperand, memory: blockedInput))
            try addStep(pd, args: convArgs)
        } else {
            try addStep(pd, args: convArgs)
            // In place: the normaliser times the input, into the convolution's output.
            var productDesc = dnnl_binary_desc_t()
            try check(dnnl_binary_desc_init(&productDesc, dnnl_binary_mul, dstDesc, &blocked, dstDesc), "binary_desc_init(mul)")
            try addOperation(&productDesc, "mul", args: [dnnl_exec_arg_t(arg: DNNL_ARG_SRC_0, memory: dstMemory),
                                                         dnnl_exec_arg_t(arg: DNNL_ARG_SRC_1, memory: blockedInput),
                                                         dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: dstMemory)])
        }
        if !direct { try addReorder(from: dstMemory, to: outputMemory) }
        for row in starts {
            addPass(Pass(steps: first..<stepCount, handles: [(inputMemory, UnsafeMutableRawPointer(input + row * shape.width)),
                                                              (outputMemory, UnsafeMutableRawPointer(output + row * shape.width))]))
        }
        return Bands(scratchOffsets: placed, weights: weightMemory, weightDesc: weightDesc.pointee, beta: betaMemory)
    }

    /// Adds a step running the operation `desc` describes (an eltwise or binary descriptor).
    private func addOperation<Desc>(_ desc: inout Desc, _ what: String, args: [dnnl_exec_arg_t]) throws {
        let attr = try Self.attributes()
        defer { dnnl_primitive_attr_destroy(attr) }
        var pd: dnnl_primitive_desc_t?
        try check(withUnsafePointer(to: &desc) { dnnl_primitive_desc_create(&pd, $0, attr, context.engine, nil) },
                  "primitive_desc_create(\(what))")
        defer { dnnl_primitive_desc_destroy(pd) }
        try addStep(pd!, args: args)
    }

    /// oneDNN's name for the implementation behind `pd` (e.g. `brgconv_1x1:avx512_core`).
    static func implementation(_ pd: dnnl_primitive_desc_t) -> String {
        var impl: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success, let impl else { return "" }
        return String(cString: impl)
    }

    /// The 1×1 convolution γ·x² + β with the power (or square root) fused and, when `operand` is
    /// given, the product with that tensor.
    private static func primitiveDesc(_ src: UnsafePointer<dnnl_memory_desc_t>, _ weights: UnsafePointer<dnnl_memory_desc_t>,
                                      _ bias: UnsafePointer<dnnl_memory_desc_t>, _ dst: UnsafePointer<dnnl_memory_desc_t>,
                                      inverse: Bool, operand: UnsafePointer<dnnl_memory_desc_t>?,
                                      context: OneDNNContext) throws -> dnnl_primitive_desc_t {
        let attr = try attributes()
        defer { dnnl_primitive_attr_destroy(attr) }
        var postOps: dnnl_post_ops_t?
        try check(dnnl_post_ops_create(&postOps), "post_ops_create")
        defer { dnnl_post_ops_destroy(postOps) }
        try check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_sqrt, 0, 0), "post_ops_append_eltwise(sqrt)")
        if !inverse {
            // 1/sqrt as sqrt then pow(-1): the JIT computes exponent -1 as a division, while
            // pow(-0.5) went through exp and log and made GDN ~2.5x slower than PSIC's own loop.
            try check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_pow, 1, -1), "post_ops_append_eltwise(pow)")
        }
        if let operand {
            try check(dnnl_post_ops_append_binary(postOps, dnnl_binary_mul, operand), "post_ops_append_binary(mul)")
        }
        try check(dnnl_primitive_attr_set_post_ops(attr, postOps), "primitive_attr_set_post_ops")
        var desc = dnnl_convolution_desc_t()
        try check(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct,
                                                     src, weights, bias, dst, [1, 1], [0, 0], [0, 0]),
                  "convolution_forward_desc_init(gdn)")
        var pd: dnnl_primitive_desc_t?
        try check(withUnsafePointer(to: &desc) { dnnl_primitive_desc_create(&pd, $0, attr, context.engine, nil) },
                  "primitive_desc_create(gdn)")
        return pd!
    }
}
