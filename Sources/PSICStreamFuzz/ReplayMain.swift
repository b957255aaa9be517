import Foundation

// An ordinary build replays inputs (e.g. a crash file) or writes the seed corpus. Built with
// -DPSIC_FUZZ -sanitize=fuzzer (Tools/fuzz/run-stream-fuzz.sh), `main` hands control to libFuzzer's
// driver: SwiftPM links an executable target's entry point under its own name, so libFuzzer's
// `main` cannot be used directly.
#if PSIC_FUZZ
@main
struct FuzzMain {
    typealias Callback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    typealias Driver = @convention(c) (UnsafeMutablePointer<CInt>,
        UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>, Callback) -> CInt

    static func main() {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "LLVMFuzzerRunDriver") else {
            fatalError("libFuzzer is not linked: build with -sanitize=fuzzer (Tools/fuzz/run-stream-fuzz.sh)")
        }
        let driver = unsafeBitCast(symbol, to: Driver.self)
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(driver(&argc, &argv, { data, size in fuzzerTestOneInput(data, size) }))
    }
}
#else
@main
struct ReplayMain {
    static func main() throws {
        let args = Array(CommandLine.arguments.dropFirst())
        if args.first == "--write-seeds", args.count == 2 {
            let dir = URL(fileURLWithPath: args[1])
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for (i, seed) in try StreamFuzzing.seeds().enumerated() {
                try Data(seed).write(to: dir.appendingPathComponent("seed\(i).psic"))
            }
            return
        }
        guard !args.isEmpty else {
            print("usage: PSICStreamFuzz FILE... (replay inputs) | --write-seeds DIR")
            print("fuzzing: Tools/fuzz/run-stream-fuzz.sh")
            return
        }
        for path in args {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            StreamFuzzing.run(bytes)
            print("\(path): \(bytes.count) bytes, no crash")
        }
    }
}
#endif
