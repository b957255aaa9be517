import ArgumentParser
import Foundation
import PSICBenchmarks
import PSICModel
import PSICCPU
import PSICCodec
import PSICCommandLine
import PSICEngine
import PSICImage
import PSICVulkan

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark kernels and the codec on each backend, side by side in one run.",
        subcommands: [BenchKernels.self, BenchGDN.self, BenchCodec.self, BenchLevels.self])
}

/// Which backends a benchmark runs on.
enum BenchBackends: String, ExpressibleByArgument, CaseIterable {
    case all, cpu, vulkan

    func open(device: String?, cpuConvolutions: CPUConvolutionChoice = .default,
              vulkanConvolutions: VulkanConvolutionChoice = .default) throws -> [Backend] {
        var out: [Backend] = []
        if self != .vulkan { out += cpuConvolutions.methods.map { CPUBackend(convolutions: $0) } }
        if self != .cpu {
            do {
                for m in vulkanConvolutions.methods { out.append(try VulkanBackend(device: device, convolutions: m)) }
            } catch {
                if self == .vulkan { throw error }
                printError("Vulkan skipped: \(error)")
            }
        }
        return out
    }
}

/// How the Vulkan backend is measured to run 5x5 stride-2 convolutions.
enum VulkanConvolutionChoice: String, ExpressibleByArgument, CaseIterable {
    /// `$PSIC_VULKAN_WINOGRAD`, else automatic (what the codec uses).
    case `default`
    case winograd, direct
    /// Both, side by side in one run.
    case both

    var methods: [VulkanConvolutionMethod?] {
        switch self {
        case .default: [nil]
        case .winograd: [.winograd]
        case .direct: [.direct]
        case .both: [.winograd, .direct]
        }
    }
}

/// Which float convolution methods the CPU backend is measured with.
enum CPUConvolutionChoice: String, ExpressibleByArgument, CaseIterable {
    /// `$PSIC_CPU_CONVOLUTIONS`, else oneDNN (what the codec uses).
    case `default`
    case onednn, im2col
    /// Both methods, side by side in one run.
    case both

    var methods: [CPUConvolutionMethod?] {
        switch self {
        case .default: [nil]
        case .onednn: [.oneDNN]
        case .im2col: [.im2col]
        case .both: [.oneDNN, .im2col]
        }
    }
}

struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Per-layer time and GFLOP/s at the layer shapes of one image size, random weights.")

    @Option(help: "Backends to measure.") var backend: BenchBackends = .all
    @Option(help: "Vulkan device (index or name substring).") var device: String?
    @Option(help: "Image width.") var width = 768
    @Option(help: "Image height.") var height = 512
    @Option(help: "Transform width N.") var N = 96
    @Option(help: "Latent channels C.") var C = 160
    @Option(help: "Timed runs per layer (median reported).") var repeats = 5
    @Option(help: "CPU float convolutions to measure: default (as the codec runs them), onednn, im2col, or both side by side.")
    var cpuConvolutions: CPUConvolutionChoice = .default
    @Option(help: "Vulkan 5x5/2 convolutions to measure: default (as the codec runs them), winograd, direct, or both side by side.")
    var vulkanConvolutions: VulkanConvolutionChoice = .default
    @Option(help: ArgumentHelp("Layers to measure, comma-separated (default: all).",
                               discussion: "A layer's name (g_a.2) or a transform's prefix (g_a, h_a, h_s, ep.7, g_s): all its "
                                   + "layers, and for g_a and g_s also the whole transform in one graph.",
                               valueName: "names"))
    var layers: String?
    @Flag(help: "Print JSON instead of a table.") var json = false

    func validate() throws {
        guard width >= 64, height >= 64, width % 64 == 0, height % 64 == 0 else {
            throw ValidationError("--width and --height must be multiples of 64, at least 64")
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        if let layers, LayerSelection(list: layers).names.isEmpty {
            throw ValidationError("--layers names no layer; give names such as g_a.2 or a transform such as g_s")
        }
    }

    func run() throws {
        // A layer's input, output and weights must fit at once; absurd sizes would trap in the
        // allocator instead of saying so (estimated in Double: the product may pass Int's range).
        let widest = Double(max(N, C, 3))
        let needed = 4 * (2 * widest * Double(width / 2) * Double(height / 2) + 25 * widest * widest)
        if let free = HostMemory.available(), needed > Double(free) {
            throw BenchmarkTooLarge(width: width, height: height, N: N, C: C, neededBytes: needed, freeBytes: free)
        }
        let backends = try backend.open(device: device, cpuConvolutions: cpuConvolutions, vulkanConvolutions: vulkanConvolutions)
        let report = try KernelBenchmark.run(backends: backends, width: width, height: height, N: N, C: C,
                                             repeats: repeats, only: layers.map(LayerSelection.init(list:)), progress: { line in
            FileHandle.standardError.write(Data("  measured \(line)\n".utf8))
        })
        if json { print(String(decoding: try report.jsonData(), as: UTF8.self)) } else { print(report.table()) }
        let wrong = report.integerDisagreements
        if !wrong.isEmpty { throw IntegerDisagreement(layers: wrong) }
    }
}

extension CPUGDNProduct: ExpressibleByArgument {}

struct BenchGDN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gdn",
        abstract: "oneDNN's GDN and IGDN on the CPU with the product fused into the convolution and as a primitive of its own, side by side.",
        discussion: "One CPU backend per form of the product: auto (what the codec runs: fused where oneDNN has a JIT kernel "
            + "for it, else its own primitive), unfused (always its own primitive) and fused (always fused, oneDNN's "
            + "reference kernel included). The implementation column says which oneDNN chose.")

    @Option(help: ArgumentHelp("GDN input sizes, WIDTHxHEIGHT, comma-separated (g_a.1's input is half the image's).",
                               valueName: "sizes"))
    var sizes = "128x128,256x256"
    @Option(help: "Channels N (the shipped model has 96).") var N = 96
    @Option(help: ArgumentHelp("Forms of the product to measure, comma-separated, the first the reference of the ratios "
                               + "and agreement: auto, unfused, fused.", valueName: "forms"))
    var products = "auto,unfused,fused"
    @Option(help: "CPU threads (default: every active core).") var threads: Int?
    @Option(help: "Timed runs per layer and size (median reported).") var repeats = 7
    @Flag(help: "Print JSON instead of a table.") var json = false

    /// The forms of `--products`, in order; throws a `ValidationError` naming an unknown one.
    func forms() throws -> [CPUGDNProduct] {
        let names = products.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let forms = names.compactMap(CPUGDNProduct.init(rawValue:))
        guard !forms.isEmpty, forms.count == names.count else {
            throw ValidationError("--products takes a comma-separated list of "
                                  + CPUGDNProduct.allCases.map(\.rawValue).joined(separator: ", ") + ", not '\(products)'")
        }
        return forms
    }

    func validate() throws {
        do { _ = try GDNBenchmark.sizes(list: sizes) } catch { throw ValidationError("--sizes: \(error)") }
        _ = try forms()
        guard (1...1024).contains(N) else { throw ValidationError("--n must be 1 to 1024") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let backends = try forms().map { CPUBackend(threads: threads, convolutions: .oneDNN, gdnProduct: $0) }
        let report = try GDNBenchmark.run(backends: backends, N: N, sizes: try GDNBenchmark.sizes(list: sizes),
                                          repeats: repeats, progress: { line in
            FileHandle.standardError.write(Data("  measured \(line)\n".utf8))
        })
        if json { print(String(decoding: try report.jsonData(), as: UTF8.self)) } else { print(report.table()) }
    }
}

/// A kernel benchmark whose layers cannot fit the free memory.
struct BenchmarkTooLarge: Error, CustomStringConvertible {
    let width: Int, height: Int, N: Int, C: Int
    let neededBytes: Double
    let freeBytes: Int
    var description: String {
        String(format: "a %dx%d benchmark with N=%d, C=%d needs about %.1f GiB for one layer and %.1f GiB is free: "
               + "choose a smaller --width/--height or --n/--c", width, height, N, C,
               neededBytes / Double(1 << 30), Double(freeBytes) / Double(1 << 30))
    }
}

/// Integer layers whose output on some backend differed from the first backend's: the integer
/// kernels are exact by design, so this is a bug of the engine or the device's driver.
struct IntegerDisagreement: Error, CustomStringConvertible {
    let layers: [KernelMeasurement]
    var description: String {
        let list = layers.map { "\($0.layer) on \($0.backend) (\($0.agreement?.differing ?? 0) values)" }
        return "integer layers differ from the first backend's output: \(list.joined(separator: ", ")). Integer kernels "
            + "must be exact on every backend, or streams will not decode across machines: report this with `psic devices`' output."
    }
}

struct BenchCodec: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec",
        abstract: "Encode and decode time of one image with the shipped model on each backend, and the entropy coder's share.")

    @Argument(help: "PNG image (default: a 768x512 synthetic image).") var image: String?
    @Option(help: "Backends to measure.") var backend: BenchBackends = .all
    @Option(help: "Vulkan device (index or name substring).") var device: String?
    @Option(help: "Model file.") var model: String?
    @Option(help: "Timed runs (median reported).") var repeats = 3
    @Option(help: "CPU float convolutions to measure: default (as the codec runs them), onednn, im2col, or both side by side.")
    var cpuConvolutions: CPUConvolutionChoice = .default
    @Option(help: "Vulkan 5x5/2 convolutions to measure: default (as the codec runs them), winograd, direct, or both side by side.")
    var vulkanConvolutions: VulkanConvolutionChoice = .default
    @Flag(help: "Print JSON instead of text.") var json = false

    struct Row: Codable {
        let backend: String
        let width: Int
        let height: Int
        let bytes: Int
        let encodeSeconds: Double
        let decodeSeconds: Double
        let entropyDecodeSeconds: Double
        var entropyShareOfDecode: Double { entropyDecodeSeconds / decodeSeconds }
    }

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        let m = try CodecModelLoader.load(model)
        let img: RGBImage
        if let image { img = try PNGCodec.decode(try readBytes(URL(fileURLWithPath: image))) } else { img = SyntheticImage.make(width: 768, height: 512) }
        var rows: [Row] = []
        for b in try backend.open(device: device, cpuConvolutions: cpuConvolutions, vulkanConvolutions: vulkanConvolutions) {
            let codec = try ImageCodec(model: m, backend: b)
            var stream = try codec.encode(img)   // warm-up: pipelines, weights
            _ = try codec.decode(stream)
            var enc: [Double] = [], dec: [Double] = [], ent: [Double] = []
            for _ in 0..<repeats {
                var t0 = Date()
                stream = try codec.encode(img)
                enc.append(Date().timeIntervalSince(t0))
                let profile = CodecProfile()
                t0 = Date()
                _ = try codec.decode(stream, profile: profile)
                dec.append(Date().timeIntervalSince(t0))
                ent.append(profile.entropySeconds)
            }
            func med(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
            rows.append(Row(backend: b.name, width: img.width, height: img.height, bytes: stream.count,
                            encodeSeconds: med(enc), decodeSeconds: med(dec), entropyDecodeSeconds: med(ent)))
        }
        if json {
            try printJSON(rows)
            return
        }
        for r in rows {
            print("\(r.backend): " + String(format: "%dx%d, %d bytes (%.3f bpp); encode %.3f s, decode %.3f s, entropy decoding %.4f s (%.1f%% of decode)",
                                             r.width, r.height, r.bytes, Double(r.bytes * 8) / Double(r.width * r.height),
                                             r.encodeSeconds, r.decodeSeconds, r.entropyDecodeSeconds, 100 * r.entropyShareOfDecode))
        }
    }
}

enum CodecModelLoader {
    static func load(_ path: String?) throws -> CodecModel {
        let url = try ModelLocator.locate(explicit: path)
        return try withFile(url) { try CodecModel(contentsOf: url) }
    }
}
