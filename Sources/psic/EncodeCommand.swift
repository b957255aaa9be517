import ArgumentParser
import Foundation
import PSICCodec
import PSICCommandLine
import PSICImage

struct EncodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Compress PNG images into PSIC streams.",
        discussion: "Inputs are PNG files or directories of them. With several inputs, -o names a directory.")

    @Argument(help: "PNG files or directories.")
    var inputs: [String]

    @Option(name: .shortAndLong, help: "Output file (one input) or directory (default: next to each input, .psic).")
    var output: String?

    @Option(name: .long, help: "Levels to transmit, 1...L (default: all). Lower is smaller and less faithful.")
    var levels: Int?

    @Option(name: .shortAndLong, help: "Images encoded at once (default: 1 on Vulkan, 2 on the CPU).")
    var jobs: Int?

    @OptionGroup var modelOptions: ModelOptions

    func run() async throws {
        let files = try gatherInputs(inputs, extensions: ["png"])
        guard !files.isEmpty else { throw ValidationError("no PNG files among the inputs") }
        let model = try modelOptions.loadModel()
        if let levels, !(1...model.levels).contains(levels) {
            throw ValidationError("--levels must be in 1...\(model.levels) for this model")
        }
        let handle = try modelOptions.makeBackend()
        let codec = try ImageCodec(model: model, handle: handle, tileTensorBytes: modelOptions.tileTensorBytes)
        let outputs = try OutputPaths(inputs: files, output: output, newExtension: "psic")
        let progress = ProgressLine(total: files.count)
        let start = Date()
        let summary = BatchSummary()
        try await forEach(files.indices, jobs: jobs ?? (handle.isGPU ? 1 : 2)) { i in try withFile(files[i]) {
            let png = try readBytes(files[i])
            let image = try PNGCodec.decode(png)
            let stream = try codec.encode(image, levels: levels)
            try Data(stream).write(to: outputs[i])
            summary.add(pixels: image.width * image.height, streamBytes: stream.count, otherBytes: png.count)
            progress.advance(files[i].lastPathComponent)
        } }
        summary.print(verb: "encoded", seconds: Date().timeIntervalSince(start), backend: handle.name)
        printFallbackNote(codec: codec, handle: handle)
    }
}


/// Where each input's result goes: `output` itself for one input (with `suffix` inserted before
/// its extension), else `output` as a directory, else next to each input.
struct OutputPaths {
    let urls: [URL]
    subscript(i: Int) -> URL { urls[i] }

    init(inputs: [URL], output: String?, newExtension: String, suffix: String = "") throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if let output, inputs.count == 1, !(fm.fileExists(atPath: output, isDirectory: &isDir) && isDir.boolValue) {
            let url = URL(fileURLWithPath: output)
            let ext = url.pathExtension.isEmpty ? newExtension : url.pathExtension
            let stem = url.deletingPathExtension()
            urls = [stem.deletingLastPathComponent().appendingPathComponent(stem.lastPathComponent + suffix + "." + ext)]
            return
        }
        var dir: URL? = nil
        if let output {
            try fm.createDirectory(atPath: output, withIntermediateDirectories: true)
            dir = URL(fileURLWithPath: output)
        }
        urls = inputs.map { u in
            let base = u.deletingPathExtension().lastPathComponent + suffix + "." + newExtension
            return (dir ?? u.deletingLastPathComponent()).appendingPathComponent(base)
        }
    }
}

/// Totals for the closing summary line of batch commands.
final class BatchSummary: @unchecked Sendable {
    private let lock = NSLock()
    private var images = 0, pixels = 0, streamBytes = 0, otherBytes = 0

    /// `otherBytes` are the PNG bytes read (encode) or written (decode).
    func add(pixels p: Int, streamBytes s: Int, otherBytes o: Int) {
        lock.lock()
        images += 1; pixels += p; streamBytes += s; otherBytes += o
        lock.unlock()
    }

    func print(verb: String, seconds: Double, backend: String) {
        let bpp = pixels > 0 ? Double(streamBytes * 8) / Double(pixels) : 0
        let line = String(format: "%@ %d image%@: %d stream bytes (%.4f bpp), %d PNG bytes, %.2f s (%.2f images/s) on %@",
                          verb, images, images == 1 ? "" : "s", streamBytes, bpp, otherBytes, seconds,
                          Double(images) / max(seconds, 1e-9), backend)
        Swift.print(line)
    }
}

/// Says how many graph runs were too large for the chosen device and ran on the fallback, and
/// how many were tiles of large images.
func printFallbackNote(codec: ImageCodec, handle: BackendHandle) {
    if codec.fallbackRuns > 0, let fallback = handle.fallback {
        print("\(codec.fallbackRuns) graph run\(codec.fallbackRuns == 1 ? "" : "s") too large for \(handle.name) ran on \(fallback.name)")
    }
    if codec.tiledRuns > 0 {
        print("large images ran in \(codec.tiledRuns) tile\(codec.tiledRuns == 1 ? "" : "s")")
    }
}

/// Runs `body` over `indices` with at most `jobs` at once; the first error stops the batch.
func forEach(_ indices: Range<Int>, jobs: Int, _ body: @escaping @Sendable (Int) throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var next = indices.lowerBound
        let width = max(1, jobs)
        while next < indices.upperBound && next - indices.lowerBound < width {
            let i = next
            group.addTask { try body(i) }
            next += 1
        }
        while try await group.next() != nil {
            if next < indices.upperBound {
                let i = next
                group.addTask { try body(i) }
                next += 1
            }
        }
    }
}
