import ArgumentParser
import Foundation
import PSICCodec
import PSICCommandLine
import PSICEntropy
import PSICImage

struct BenchLevels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "levels",
        abstract: "Rate and quality at every level over a folder of PNGs (e.g. ../shared/data/kodak).",
        discussion: "Each image is encoded once with all levels; each level's cut is decoded (sampled levels with --seed) and compared with the original: bpp from the cut stream's bytes, PSNR over 8-bit RGB.")

    @Argument(help: "PNG files or directories.") var inputs: [String]
    @Option(help: "Seed for sampled levels.") var seed: UInt64 = 0
    @Option(help: "Stream format version whose bytes are counted (default: the newest; the decodes do not depend on it).")
    var formatVersion: UInt16 = PSICStream.formatVersion
    @OptionGroup var modelOptions: ModelOptions
    @Flag(help: "Print JSON instead of a table.") var json = false

    struct Level: Codable {
        let level: Int
        let bpp: Double
        let psnr: Double
    }

    func validate() throws {
        try validateFormatVersion(formatVersion)
    }

    func run() throws {
        let files = try gatherInputs(inputs, extensions: ["png"])
        guard !files.isEmpty else { throw ValidationError("no PNG files among the inputs") }
        let model = try modelOptions.loadModel()
        let handle = try modelOptions.makeBackend()
        let codec = try modelOptions.makeCodec(model: model, handle: handle)
        let L = model.levels
        var bits = [Double](repeating: 0, count: L), psnrSum = [Double](repeating: 0, count: L)
        var pixels = 0.0
        let progress = ProgressLine(total: files.count)
        for f in files {
            try withFile(f) {
                let image = try PNGCodec.decode(try readBytes(f))
                let stream = try codec.encode(image)
                let parsed = try PSICStream(bytes: stream)
                for l in 1...L {
                    let cut = try parsed.truncated(toLevels: l, format: formatVersion)
                    let decoded = try codec.decode(cut, seeds: [seed])[0]
                    bits[l - 1] += Double(cut.count * 8)
                    psnrSum[l - 1] += min(decoded.psnr(to: image), 99)   // 99 dB for an exact decode keeps the mean finite
                }
                pixels += Double(image.width * image.height)
            }
            progress.advance(f.lastPathComponent)
        }
        // bpp: total bits over total pixels; PSNR: mean over images (as Kodak results are reported).
        let rows = (0..<L).map { Level(level: $0 + 1, bpp: bits[$0] / pixels, psnr: psnrSum[$0] / Double(files.count)) }
        if json {
            try printJSON(rows)
            return
        }
        print("\(files.count) images, backend \(handle.name), model \(model.info.fingerprint), seed \(seed), format v\(formatVersion)")
        print("level     bpp   PSNR (dB)")
        for r in rows { print(String(format: "%5d  %6.4f   %6.2f", r.level, r.bpp, r.psnr)) }
    }

}
