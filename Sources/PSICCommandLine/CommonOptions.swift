import ArgumentParser
import Foundation
import PSICCodec
import PSICModel

/// Options every command that runs the model shares.
public struct ModelOptions: ParsableArguments, Sendable {
    public init() {}

    @Option(name: .long, help: ArgumentHelp("Model file (.safetensors).",
                                            discussion: "Default: $PSIC_MODEL, else Models/psic-conv.safetensors next to the executable's package or in the current directory."))
    public var model: String?

    @Option(name: .long, help: "Compute backend: auto (Vulkan when a device exists, else CPU), vulkan or cpu.")
    public var backend: BackendChoice = .auto

    @Option(name: .long, help: ArgumentHelp("Vulkan device: index or name substring (see `psic devices`).",
                                            discussion: "Also read from $PSIC_VULKAN_DEVICE."))
    public var device: String?

    @Option(name: .long, help: ArgumentHelp("Largest layer, in MiB, before an image runs in tiles.",
                                            discussion: "Bounds memory per image: lower it on a small machine. Tiles join without seams; each costs an overlap (32 pixels; 128 for the hyperprior networks). The default is 512, or a sixteenth of the memory available to the process (the machine's, or a container's limit) when that is less."))
    public var tileMb: Int = ImageCodec.defaultTileTensorBytes >> 20

    /// `tileMb` in bytes, for `ImageCodec(tileTensorBytes:)`.
    public var tileTensorBytes: Int { tileMb << 20 }

    @Option(name: .customLong("graph-cache-mb"),
            help: ArgumentHelp("Tensor memory, in MiB, kept in prepared graphs between images (or requests) for reuse by images of the same size.",
                               discussion: "Past it the least recently used graphs give their memory back, then are dropped. 0 keeps none: every image prepares its graphs again. The default is 4096, or an eighth of the memory available to the process (a container's limit) when that is less."))
    public var graphCacheMegabytes = min(4096, ImageCodec.defaultIdleGraphBytes >> 20)

    /// `graphCacheMegabytes` in bytes, for `ImageCodec(idleGraphBytesLimit:)`.
    public var graphCacheBytes: Int { graphCacheMegabytes << 20 }

    public func validate() throws {
        if backend == .cpu, let device {
            throw ValidationError("--device \(device) chooses a Vulkan device; drop it, or use --backend vulkan or auto")
        }
        guard (1...(1 << 20)).contains(tileMb) else {
            throw ValidationError("--tile-mb must be between 1 and 1048576 MiB (default \(ImageCodec.defaultTileTensorBytes >> 20))")
        }
        guard (0...(1 << 24)).contains(graphCacheMegabytes) else {
            throw ValidationError("--graph-cache-mb must be between 0 and 16777216 MiB (0 keeps no graph between images)")
        }
    }

    public func loadModel() throws -> CodecModel {
        let url = try ModelLocator.locate(explicit: model)
        return try withFile(url) { try CodecModel(contentsOf: url) }
    }

    public func makeBackend() throws -> BackendHandle {
        try BackendHandle(choice: backend, device: device)
    }

    /// The codec for `model` on `handle`, with `--tile-mb` and `--graph-cache-mb`.
    public func makeCodec(model: CodecModel, handle: BackendHandle) throws -> ImageCodec {
        try ImageCodec(model: model, handle: handle, idleGraphBytesLimit: graphCacheBytes, tileTensorBytes: tileTensorBytes)
    }
}

extension BackendChoice: ExpressibleByArgument {}

/// Prints `value` as pretty, key-sorted JSON on standard output (the `--json` of every command).
public func printJSON<T: Encodable>(_ value: T) throws {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try e.encode(value), as: UTF8.self))
}

public func printError(_ message: String) {
    FileHandle.standardError.write(Data("psic: \(message)\n".utf8))
}

/// Expands files and directories into the list of input files with the given extensions.
public func gatherInputs(_ paths: [String], extensions: Set<String>) throws -> [URL] {
    var out: [URL] = []
    let fm = FileManager.default
    for p in paths {
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: p, isDirectory: &isDir) else {
            throw ValidationError("input '\(p)' does not exist")
        }
        if isDir.boolValue {
            // Files only: subfolders are not searched (nor is a folder named like a PNG).
            let items = try fm.contentsOfDirectory(atPath: p).sorted()
            out += items.filter { extensions.contains(($0 as NSString).pathExtension.lowercased()) }
                .map { URL(fileURLWithPath: p).appendingPathComponent($0) }
                .filter { u in var d: ObjCBool = false; return fm.fileExists(atPath: u.path, isDirectory: &d) && !d.boolValue }
        } else {
            out.append(URL(fileURLWithPath: p))
        }
    }
    // A file named twice (directly and through its folder, say) is processed once.
    var seen = Set<String>()
    return out.filter { seen.insert($0.standardizedFileURL.path).inserted }
}

/// The bytes of `url`, or an error naming the file.
public func readBytes(_ url: URL) throws -> [UInt8] {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
        throw FileError(path: url.path, underlying: UnreadableFile(reason: "a folder"))
    }
    do { return [UInt8](try Data(contentsOf: url)) } catch {
        throw FileError(path: url.path, underlying: UnreadableFile(reason: error.localizedDescription))
    }
}
