import ArgumentParser
import Foundation

/// Finds the model file: an explicit path, `$PSIC_MODEL`, or the shipped model.
public enum ModelLocator {
    public static let shippedName = "Models/psic-conv.safetensors"

    public static func locate(explicit: String?) throws -> URL {
        if let explicit { return try existing(explicit, origin: "--model") }
        if let env = ProcessInfo.processInfo.environment["PSIC_MODEL"], !env.isEmpty {
            return try existing(env, origin: "PSIC_MODEL")
        }
        var candidates: [URL] = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(shippedName)]
        // The executable lives in <package>/.build/<config>/psic when run from a checkout.
        // The running executable itself: argv[0] is a bare name when psic was found on PATH.
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent(shippedName))
            dir = dir.deletingLastPathComponent()
        }
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) { return found }
        throw ValidationError("no model file found; pass --model PATH or set PSIC_MODEL (looked for \(shippedName) in the current directory and above the executable)")
    }

    private static func existing(_ path: String, origin: String) throws -> URL {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("\(origin): model file '\(path)' does not exist")
        }
        return URL(fileURLWithPath: path)
    }
}
