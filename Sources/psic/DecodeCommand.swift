import ArgumentParser
import Foundation
import PSICCodec
import PSICCommandLine
import PSICImage

extension DetailMode: ExpressibleByArgument {}

struct DecodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Decode PSIC streams to PNG images.",
        discussion: """
            Levels the stream does not carry (or beyond --levels) are sampled from the model's prior: \
            --seed chooses the sample, --samples M writes M different decodes (NAME-s0.png, NAME-s1.png, ...).
            --details mean fills them with the prior's mean instead: one deterministic image, higher PSNR, less detail.
            --details calibrated draws them from the tables the coder codes each channel with (the prior widened as \
            the encoder's own latents spread): detail closer to a photo's, lower PSNR, no knob to choose.
            --detail-spread K samples them K steps of the scale table wider than the prior (x 1.063 each with the shipped model): \
            detail closer to a photo's in its statistics, lower PSNR.
            """)

    @Argument(help: "PSIC stream files or directories.")
    var inputs: [String]

    @Option(name: .shortAndLong, help: "Output PNG (one input file) or folder (several inputs, a folder input, or a trailing /; default: next to each input).")
    var output: String?

    @Flag(name: .shortAndLong, help: "Replace output files that already exist (default: refuse before decoding anything).")
    var force = false

    @Option(name: .long, help: "Decode only the first N levels of the stream (default: all it carries).")
    var levels: Int?

    @Option(name: .long, help: "Sampling seed for untransmitted levels (default: the seed stored in the stream).")
    var seed: UInt64?

    @Option(name: .long, help: "Number of sampled decodes per stream, 1...64.")
    var samples: Int = 1

    @Option(name: .long, help: "How untransmitted levels are filled: sampled (sharp, one of many), mean (deterministic, higher PSNR, softer) or calibrated (sampled at the spread of encoded latents).")
    var details: DetailMode = .sampled

    @Option(name: .long, help: ArgumentHelp(
        "Sample untransmitted levels K steps of the scale table wider than the prior, or than the coder's tables with --details calibrated (negative: narrower), \(DecodeRequest.detailSpreadRange.lowerBound)...\(DecodeRequest.detailSpreadRange.upperBound).",
        discussion: "Each step multiplies the scale by the ratio of the model's scale grid, 1.063 for the shipped model (128 tables); 0, the default, is the trained prior (the coder's tables with --details calibrated).", valueName: "K"))
    var detailSpread: Int = 0

    @Option(name: .shortAndLong, help: "Streams decoded at once (default: 1 on Vulkan, 2 on the CPU).")
    var jobs: Int?

    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        guard (1...64).contains(samples) else { throw ValidationError("--samples must be in 1...64") }
        if let levels, levels < 1 { throw ValidationError("--levels must be at least 1") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if details == .mean && samples > 1 {
            throw ValidationError("--details mean decodes the same image for every seed; use --samples 1 (or --details sampled)")
        }
        guard DecodeRequest.detailSpreadRange.contains(detailSpread) else {
            let r = DecodeRequest.detailSpreadRange
            throw ValidationError("--detail-spread must be in \(r.lowerBound)...\(r.upperBound) (steps of the scale table; 0 is the trained prior)")
        }
        if details == .mean && detailSpread != 0 {
            throw ValidationError("--detail-spread widens sampled details; --details mean samples nothing (drop one of them)")
        }
    }

    func run() async throws {
        let files = try gatherInputs(inputs, extensions: ["psic"])
        guard !files.isEmpty else { throw ValidationError("no .psic files among the inputs") }
        let model = try modelOptions.loadModel()
        if let levels, levels > model.levels {
            throw ValidationError("--levels must be in 1...\(model.levels) for this model")
        }
        let samples = self.samples
        let outputs = try OutputPaths(inputs: files, arguments: inputs, output: output, newExtension: "png",
                                      suffixes: samples == 1 ? [""] : (0..<samples).map { "-s\($0)" }, overwrite: force)
        let handle = try modelOptions.makeBackend()
        let codec = try modelOptions.makeCodec(model: model, handle: handle)
        let progress = ProgressLine(total: files.count)
        let summary = BatchSummary()
        let start = Date()
        let levels = self.levels, seed = self.seed, details = self.details, spread = self.detailSpread
        let failed = await forEachItem(files.indices, jobs: jobs ?? (handle.isGPU ? 1 : 2), progress: progress) { i in
            let stream = try readBytes(files[i])
            let images = try withFile(files[i]) {
                let base = try seed ?? codec.streamSeed(stream)
                return try codec.decode(stream, levels: levels, seeds: (0..<samples).map { base &+ UInt64($0) }, details: details,
                                        detailSpread: spread, profile: progress.tileProfile(for: files[i].lastPathComponent))
            }
            var written = 0
            // Every level present (or mean details): the samples are one image, coded once.
            let same = images.count > 1 && images.dropFirst().allSatisfy { $0 == images[0] }
            if same { summary.noteIdenticalSamples() }
            var png: [UInt8] = []
            for (s, img) in images.enumerated() {
                if s == 0 || !same { png = try withFile(files[i]) { try PNGCodec.encode(img) } }
                try writeOutput(png, to: outputs[i, suffix: s])
                written += png.count
            }
            summary.add(pixels: images[0].width * images[0].height, streamBytes: stream.count, otherBytes: written)
            progress.advance(files[i].lastPathComponent)
        }
        if failed < files.count { summary.print(verb: "decoded", seconds: Date().timeIntervalSince(start), backend: handle.name) }
        if summary.identicalSamples > 0 {
            let n = summary.identicalSamples
            print("note: \(n) stream\(n == 1 ? "" : "s") carried every level decoded, so \(n == 1 ? "its" : "their") \(samples) samples are identical "
                  + "(samples differ only in levels the stream lacks: cut it with `psic truncate` or decode fewer with --levels)")
        }
        printFallbackNote(codec: codec, handle: handle)
        if failed > 0 { throw BatchFailure(failed: failed, total: files.count) }
    }
}
