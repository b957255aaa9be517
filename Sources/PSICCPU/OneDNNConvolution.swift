import COneDNN
import PSICEngine

/// One float convolution or transposed convolution run by oneDNN, set up once per graph node.
///
/// The input is reordered into a blocked buffer, the convolution (with bias and activation fused)
/// writes a blocked output, and that is reordered back. For the analysis transform's 5×5/2
/// convolutions the two reorders cost a few percent of the convolution, and the blocked kernel is
/// ~1.5× faster than im2col + SGEMM. A strided transposed convolution runs as one stride-1
/// convolution per output phase (`TransposedConvPhases`). Measurements: docs/design.md.
final class OneDNNConvolution: OneDNNLayer {
    enum Kind {
        case convolution
        /// Transposed convolution (oneDNN's "deconvolution"), weights `[in][out][k][k]`.
        case transposed
    }

    /// What the layer computes: either kind of convolution, with its parameters.
    struct Spec {
        let kind: Kind
        let inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int, padding: Int
        let weights: [Float], bias: [Float]
        let activation: Activation

        init(_ l: Conv2dLayer) {
            kind = .convolution
            inChannels = l.inChannels; outChannels = l.outChannels
            kernelSize = l.kernelSize; stride = l.stride; padding = l.padding
            weights = l.weights; bias = l.bias; activation = l.activation
        }

        init(_ l: ConvTranspose2dLayer) {
            kind = .transposed
            inChannels = l.inChannels; outChannels = l.outChannels
            kernelSize = l.kernelSize; stride = l.stride; padding = l.padding
            weights = l.weights; bias = l.bias; activation = l.activation
        }

        /// Whether oneDNN runs this layer at these shapes. Not when a right/bottom padding would
        /// be negative (a transposed conv whose output padding exceeds its padding), and not for
        /// transposed convs to fewer than 8 channels: the blocked kernels cannot block those
        /// outputs, and the synthesis transform's 96 → 3 layer measured ~2× slower than col2im + SGEMM.
        func runsInOneDNN(inputShape: TensorShape, outputShape: TensorShape) -> Bool {
            guard rightPadding(inputShape: inputShape, outputShape: outputShape).allSatisfy({ $0 >= 0 }) else { return false }
            return kind == .convolution || outChannels >= 8
        }

        /// oneDNN wants both paddings explicitly; the right/bottom one follows from the shapes.
        func rightPadding(inputShape: TensorShape, outputShape: TensorShape) -> [Int64] {
            let k = kernelSize, s = stride, p = padding
            let hi = inputShape.height, wi = inputShape.width, ho = outputShape.height, wo = outputShape.width
            switch kind {
            case .convolution: return [Int64((ho - 1) * s + k - hi - p), Int64((wo - 1) * s + k - wi - p)]
            case .transposed: return [Int64((hi - 1) * s + k - ho - p), Int64((wi - 1) * s + k - wo - p)]
            }
        }
    }

    /// Prepares the layer for fixed planar input and output buffers (`input`, `output`: NCHW
    /// tensors of `inputShape` and `outputShape`, which must outlive this object).
    init(_ spec: Spec, input: UnsafeMutablePointer<Float>, inputShape: TensorShape,
         output: UnsafeMutablePointer<Float>, outputShape: TensorShape, context: OneDNNContext) throws {
        super.init(context: context)
        let kind = spec.kind, inChannels = spec.inChannels, outChannels = spec.outChannels
        let k = spec.kernelSize, s = spec.stride, p = spec.padding, weights = spec.weights
        let hi = inputShape.height, wi = inputShape.width, ho = outputShape.height, wo = outputShape.width
        let srcDims: [Int64] = [1, Int64(inChannels), Int64(hi), Int64(wi)]
        var userSrc = dnnl_memory_desc_t(), userDst = dnnl_memory_desc_t(), biasDesc = dnnl_memory_desc_t()
        try check(dnnl_memory_desc_init_by_tag(&userSrc, 4, srcDims, dnnl_f32, dnnl_nchw), "memory_desc_init(src)")
        try check(dnnl_memory_desc_init_by_tag(&userDst, 4, [1, Int64(outChannels), Int64(ho), Int64(wo)], dnnl_f32, dnnl_nchw),
                  "memory_desc_init(dst)")
        try check(dnnl_memory_desc_init_by_tag(&biasDesc, 1, [Int64(outChannels)], dnnl_f32, dnnl_x), "memory_desc_init(bias)")
        let userSrcMemory = try makeMemory(&userSrc, handle: UnsafeMutableRawPointer(input))
        let userDstMemory = try makeMemory(&userDst, handle: UnsafeMutableRawPointer(output))
        let biasMemory = try makeMemory(&biasDesc, handle: nil, copying: spec.bias)
        let attr = try Self.attributes(spec.activation)
        defer { dnnl_primitive_attr_destroy(attr) }

        // oneDNN accepts a strided view only if each dimension's extent fits within the next
        // outer stride, so a phase's rows × s must not pass the output height: ho % s == 0.
        let phases = kind == .transposed && outputShape.height % s == 0
            ? TransposedConvPhases(kernelSize: k, stride: s, padding: p, inputShape: inputShape, outputShape: outputShape)
            : nil
        if kind == .convolution || phases == nil {
            // One primitive: a convolution, or oneDNN's own transposed convolution where the
            // phase split below does not apply.
            let padRight = spec.rightPadding(inputShape: inputShape, outputShape: outputShape)
            let weightDims: [Int64] = [Int64(outChannels), Int64(inChannels), Int64(k), Int64(k)]
            let pd = try makePrimitiveDesc(kind == .convolution ? .convolution : .transposed, srcDims: srcDims,
                                           src: nil, weightDims: weightDims, dstDims: [1, Int64(outChannels), Int64(ho), Int64(wo)],
                                           strides: [Int64(s), Int64(s)], padLeft: [Int64(p), Int64(p)],
                                           padRight: padRight, bias: &biasDesc, attr: attr)
            defer { dnnl_primitive_desc_destroy(pd) }
            implementation = Self.implementation(pd)
            let srcMemory = try inputMemory(pd, user: userSrcMemory, userDesc: &userSrc)
            try addConvolution(pd, src: srcMemory, weights: weights, weightTag: kind == .convolution ? dnnl_oihw : dnnl_iohw,
                               weightDims: weightDims, bias: biasMemory, output: userDstMemory, outputDesc: &userDst,
                               dstOffset: nil)
            return
        }
        // A strided transposed convolution as one stride-1 convolution per output phase (see
        // `TransposedConvPhases`), each written into its phase of the output by a strided reorder.
        // oneDNN's own transposed kernel ran the synthesis transform's 5×5/2 layers at ~80–90
        // GFLOP/s, its forward convolutions at ~100–150.
        var srcMemory: dnnl_memory_t?
        var phaseDstOffset = 0
        var names: [String] = []
        for phase in phases!.phases {
            let dstDims: [Int64] = [1, Int64(outChannels), Int64(phase.rows), Int64(phase.columns)]
            let weightDims: [Int64] = [Int64(outChannels), Int64(inChannels), Int64(phase.taps.y.count), Int64(phase.taps.x.count)]
            var chosenSrc: UnsafePointer<dnnl_memory_desc_t>?
            if let srcMemory { try check(dnnl_memory_get_memory_desc(srcMemory, &chosenSrc), "memory_get_memory_desc") }
            let pd = try makePrimitiveDesc(.convolution, srcDims: srcDims, src: chosenSrc, weightDims: weightDims,
                                           dstDims: dstDims, strides: [1, 1],
                                           padLeft: [Int64(phase.padLeft.y), Int64(phase.padLeft.x)],
                                           padRight: [Int64(phase.padRight.y), Int64(phase.padRight.x)],
                                           bias: &biasDesc, attr: attr)
            defer { dnnl_primitive_desc_destroy(pd) }
            names.append(Self.implementation(pd))
            if srcMemory == nil {
                srcMemory = try inputMemory(pd, user: userSrcMemory, userDesc: &userSrc)
                phaseDstOffset = scratchBytes
            }
            // This phase's output pixels in the planar output: every s-th row and column.
            var phaseView = dnnl_memory_desc_t()
            let plane = Int64(ho * wo)
            try check(dnnl_memory_desc_init_by_strides(&phaseView, 4, dstDims, dnnl_f32,
                                                       [Int64(outChannels) * plane, plane, Int64(s * wo), Int64(s)]),
                      "memory_desc_init_by_strides")
            let viewMemory = try makeMemory(&phaseView, handle: UnsafeMutableRawPointer(output + phase.row * wo + phase.column))
            let phaseWeights = phases!.weights(weights, phase: phase, inChannels: inChannels, outChannels: outChannels)
            try addConvolution(pd, src: srcMemory!, weights: phaseWeights, weightTag: dnnl_oihw, weightDims: weightDims,
                               bias: biasMemory, output: viewMemory, outputDesc: &phaseView, dstOffset: phaseDstOffset)
        }
        implementation = Set(names).sorted().joined(separator: ",") + " (\(names.count) phases)"
    }

    private enum PrimitiveKind { case convolution, transposed }

    private func makePrimitiveDesc(_ kind: PrimitiveKind, srcDims: [Int64], src: UnsafePointer<dnnl_memory_desc_t>?,
                                   weightDims: [Int64], dstDims: [Int64], strides: [Int64], padLeft: [Int64],
                                   padRight: [Int64], bias: UnsafePointer<dnnl_memory_desc_t>,
                                   attr: dnnl_primitive_attr_t?) throws -> dnnl_primitive_desc_t {
        var anySrc = dnnl_memory_desc_t(), anyDst = dnnl_memory_desc_t(), anyWeights = dnnl_memory_desc_t()
        if let src { anySrc = src.pointee } else {
            try check(dnnl_memory_desc_init_by_tag(&anySrc, 4, srcDims, dnnl_f32, dnnl_format_tag_any), "memory_desc_init(src any)")
        }
        try check(dnnl_memory_desc_init_by_tag(&anyDst, 4, dstDims, dnnl_f32, dnnl_format_tag_any), "memory_desc_init(dst any)")
        try check(dnnl_memory_desc_init_by_tag(&anyWeights, 4, weightDims, dnnl_f32, dnnl_format_tag_any),
                  "memory_desc_init(weights any)")
        var desc = dnnl_convolution_desc_t()
        switch kind {
        case .convolution:
            try check(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct,
                                                         &anySrc, &anyWeights, bias, &anyDst,
                                                         strides, padLeft, padRight), "convolution_forward_desc_init")
        case .transposed:
            try check(dnnl_deconvolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_deconvolution_direct,
                                                           &anySrc, &anyWeights, bias, &anyDst,
                                                           strides, padLeft, padRight), "deconvolution_forward_desc_init")
        }
        var pd: dnnl_primitive_desc_t?
        try check(withUnsafePointer(to: &desc) { dnnl_primitive_desc_create(&pd, $0, attr, context.engine, nil) },
                  "primitive_desc_create")
        return pd!
    }

    /// Bias and activation fused into the convolution as post-ops.
    private static func attributes(_ activation: Activation) throws -> dnnl_primitive_attr_t? {
        let attr = try attributes()
        if let slope = activation.negativeSlope {
            var postOps: dnnl_post_ops_t?
            try check(dnnl_post_ops_create(&postOps), "post_ops_create")
            defer { dnnl_post_ops_destroy(postOps) }
            try check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_relu, slope, 0), "post_ops_append_eltwise")
            try check(dnnl_primitive_attr_set_post_ops(attr, postOps), "primitive_attr_set_post_ops")
        }
        return attr
    }

    private static func implementation(_ pd: dnnl_primitive_desc_t) -> String {
        var impl: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success, let impl else { return "?" }
        return String(cString: impl)
    }

    /// The input as the primitive wants it: the planar buffer itself, or a blocked copy in scratch
    /// made by a reorder step.
    private func inputMemory(_ pd: dnnl_primitive_desc_t, user: dnnl_memory_t,
                             userDesc: UnsafePointer<dnnl_memory_desc_t>) throws -> dnnl_memory_t {
        let srcDesc = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0)!
        guard dnnl_memory_desc_equal(srcDesc, userDesc) == 0 else { return user }
        let blocked = try makeScratchMemory(srcDesc)
        try addReorder(from: user, to: blocked)
        return blocked
    }

    /// Adds the primitive's step (weights reordered into its layout now) and, when its output is
    /// blocked, the reorder into `output`. The blocked output goes to scratch at `dstOffset`
    /// (nil: a new slot).
    private func addConvolution(_ pd: dnnl_primitive_desc_t, src: dnnl_memory_t, weights: [Float],
                                weightTag: dnnl_format_tag_t, weightDims: [Int64], bias: dnnl_memory_t,
                                output: dnnl_memory_t, outputDesc: UnsafePointer<dnnl_memory_desc_t>,
                                dstOffset: Int?) throws {
        let weightDesc = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)!
        let weightMemory = try makeMemory(weightDesc, handle: nil)
        var userWeights = dnnl_memory_desc_t()
        try check(dnnl_memory_desc_init_by_tag(&userWeights, 4, weightDims, dnnl_f32, weightTag), "memory_desc_init(weights)")
        try weights.withUnsafeBufferPointer { w in
            var userWeightMemory: dnnl_memory_t?
            try check(dnnl_memory_create(&userWeightMemory, &userWeights, context.engine,
                                         UnsafeMutableRawPointer(mutating: w.baseAddress!)), "memory_create(weights)")
            defer { dnnl_memory_destroy(userWeightMemory) }
            try reorderNow(from: userWeightMemory!, to: weightMemory)
        }
        let dstDesc = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0)!
        let direct = dnnl_memory_desc_equal(dstDesc, outputDesc) != 0
        let dstMemory = direct ? output : try makeScratchMemory(dstDesc, at: dstOffset)
        try addStep(pd, args: [
            dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: src),
            dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: weightMemory),
            dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: bias),
            dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: dstMemory),
        ])
        if !direct { try addReorder(from: dstMemory, to: output) }
    }

}

private extension Activation {
    /// The slope of oneDNN's `eltwise_relu` post-op that computes this activation (nil: none).
    var negativeSlope: Float? {
        switch self {
        case .none: nil
        case .relu: 0
        case let .leakyReLU(slope): slope
        }
    }
}
