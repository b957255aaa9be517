import ArgumentParser
import Foundation
import PSICCodec
import PSICCommandLine
import PSICEntropy
import PSICImage

struct EncodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Compress PNG images into PSIC streams.",
        discussion: "Inputs are PNG files or directories of them. With several inputs, -o names a directory.")

    @Argument(help: "PNG files or directories.")
    var inputs: [String]

    @Option(name: .shortAndLong, help: "Output file (one input file) or folder (several inputs, a folder input, or a trailing /; default: next to each input, .psic).")
    var output: String?

    @Flag(name: .shortAndLong, help: "Replace output files that already exist (default: refuse before encoding anything).")
    var force = false

    @Option(name: .long, help: "Levels to transmit, 1...L (default: all). Lower is smaller and less faithful.")
    var levels: Int?

    @Option(name: .long, help: ArgumentHelp("Largest stream, in bytes: each stream keeps the most levels that fit.",
                                            discussion: "An image whose first level does not fit fails (the error says what it needs). With --levels, at most that many levels."))
    var maxBytes: Int?

    @Option(name: .long, help: ArgumentHelp("Largest stream, in bits per pixel of its image: as --max-bytes, per image.",
                                            discussion: "For a folder of images of different sizes at one rate, e.g. --max-bpp 0.25."))
    var maxBpp: Double?

    @Option(name: .long, help: ArgumentHelp("Smallest PSNR in dB: each stream keeps the fewest levels whose decode reaches it.",
                                            discussion: "Measured on the decode `psic decode` gives by default on this backend (the stream's seed, sampled details; --details mean decodes score higher, calibrated details and a --detail-spread above 0 lower), by decoding up to 1 + log2(L) cuts per image. An image that stays under it with every level keeps them all and is counted in the summary."))
    var minPsnr: Double?

    @Option(name: .long, help: ArgumentHelp("Stream format version to write (default: \(PSICStream.formatVersion), the newest).",
                                            discussion: "Version 1 streams are 18 bytes larger in the header and ~6 bytes per substream larger; write them only for decoders that read no newer version. Both decode to the same image."))
    var formatVersion: UInt16 = PSICStream.formatVersion

    @Option(name: .long, help: ArgumentHelp("Rate-distortion weight of the encoder's symbol choice, bits per squared latent step (default: the model file's; the shipped one names none: nearest rounding).",
                                            discussion: "Near a rounding boundary the encoder takes the cheaper of the two symbols around a latent unless that costs more than lambda times the extra squared error. Larger is closer to plain rounding; 0 is plain rounding (as the model trained). Decoders read every choice alike."))
    var rdLambda: Double?

    @Option(name: .shortAndLong, help: "Images encoded at once (default: 1 on Vulkan, 2 on the CPU).")
    var jobs: Int?

    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if maxBytes != nil, maxBpp != nil { throw ValidationError("give --max-bytes or --max-bpp, not both") }
        if let maxBytes, maxBytes < 1 { throw ValidationError("--max-bytes must be at least 1") }
        if let maxBpp, !(maxBpp.isFinite && maxBpp > 0) { throw ValidationError("--max-bpp must be a positive number") }
        if minPsnr != nil, levels != nil || maxBytes != nil || maxBpp != nil {
            throw ValidationError("--min-psnr chooses the levels itself: drop --levels, --max-bytes and --max-bpp")
        }
        if let minPsnr, !minPsnr.isFinite { throw ValidationError("--min-psnr must be a number of dB, e.g. 30") }
        try validateFormatVersion(formatVersion)
        if let rdLambda, !(rdLambda.isFinite && rdLambda >= 0) {
            throw ValidationError("--rd-lambda must be a number >= 0 (0 rounds to the nearest symbol)")
        }
    }

    /// The quantiser --rd-lambda names.
    private var quantization: Quantization {
        guard let rdLambda else { return .modelDefault }
        return rdLambda == 0 ? .nearest : .rateDistortion(lambda: rdLambda)
    }

    /// The byte limit for an image of `pixels` pixels, if any.
    private func byteLimit(pixels: Int) -> Int? {
        if let maxBytes { return maxBytes }
        // A rate past Int's range is no limit at all (converting it would trap).
        return maxBpp.map { Int(min((Double(pixels) * $0 / 8).rounded(.down), Double(Int.max / 2))) }
    }

    func run() async throws {
        let files = try gatherInputs(inputs, extensions: ["png"])
        guard !files.isEmpty else { throw ValidationError("no PNG files among the inputs") }
        let model = try modelOptions.loadModel()
        if let levels, !(1...model.levels).contains(levels) {
            throw ValidationError("--levels must be in 1...\(model.levels) for this model")
        }
        let outputs = try OutputPaths(inputs: files, arguments: inputs, output: output, newExtension: "psic", overwrite: force)
        let handle = try modelOptions.makeBackend()
        let codec = try modelOptions.makeCodec(model: model, handle: handle)
        let progress = ProgressLine(total: files.count)
        let start = Date()
        let summary = BatchSummary()
        let failed = await forEachItem(files.indices, jobs: jobs ?? (handle.isGPU ? 1 : 2), progress: progress) { i in
            let png = try readBytes(files[i])
            let image = try withFile(files[i]) { try PNGCodec.decode(png) }
            let limit = byteLimit(pixels: image.width * image.height)
            let stream: [UInt8]
            let profile = progress.tileProfile(for: files[i].lastPathComponent)
            if let minPsnr {
                let chosen = try withFile(files[i]) { try codec.encode(image, minimumPSNR: minPsnr, formatVersion: formatVersion,
                                                                                  quantization: quantization, profile: profile) }
                stream = chosen.stream
                summary.noteLevels(chosen.levels, reachedTarget: chosen.reached)
            } else {
                stream = try withFile(files[i]) { try codec.encode(image, levels: levels, maxBytes: limit, formatVersion: formatVersion,
                                                                     quantization: quantization, profile: profile) }
                if limit != nil { summary.noteLevels(try PSICStream.peekHeader(stream).levelsPresent) }
            }
            try writeOutput(stream, to: outputs[i])
            summary.add(pixels: image.width * image.height, streamBytes: stream.count, otherBytes: png.count)
            progress.advance(files[i].lastPathComponent)
        }
        if failed < files.count {
            summary.print(verb: "encoded", seconds: Date().timeIntervalSince(start), backend: handle.name,
                          limit: minPsnr.map { String(format: "%.2f dB", $0) } ?? "the size limit")
        }
        printFallbackNote(codec: codec, handle: handle)
        if failed > 0 { throw BatchFailure(failed: failed, total: files.count) }
    }
}
