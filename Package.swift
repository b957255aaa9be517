// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "PSIC",
    products: [
        .executable(name: "psic", targets: ["psic"]),
        .executable(name: "psic-loadtest", targets: ["psic-loadtest"]),
        .library(name: "PSICCodec", targets: ["PSICCodec"]),
        .library(name: "PSICEngine", targets: ["PSICEngine"]),
        .library(name: "PSICCPU", targets: ["PSICCPU"]),
        .library(name: "PSICVulkan", targets: ["PSICVulkan"]),
        .library(name: "PSICEntropy", targets: ["PSICEntropy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The HTTP server (PSICServer, `psic serve`) and its tests / load tester only.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // System libraries (Debian: libvulkan-dev, libopenblas-dev, libdnnl-dev, libpng-dev).
        .systemLibrary(name: "CVulkan", pkgConfig: "vulkan",
                       providers: [.apt(["libvulkan-dev"])]),
        .systemLibrary(name: "COpenBLAS", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "COneDNN", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),

        // Build-time shader compilation: Shaders/*.comp -> SPIR-V -> embedded Swift.
        .executableTarget(name: "ShaderEmbedder"),
        .plugin(name: "ShaderPlugin", capability: .buildTool(),
                dependencies: ["ShaderEmbedder"], path: "Tools/ShaderPlugin"),

        // Engine: tensor/graph description shared by every backend.
        .target(name: "PSICEngine"),
        // The integer layers' 16-bit GEMM (AVX2 when the CPU has it, checked at run time).
        .target(name: "CIntGEMM", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "PSICCPU", dependencies: ["PSICEngine", "COpenBLAS", "COneDNN", "CIntGEMM"],
                swiftSettings: [.unsafeFlags(["-O"])]),
        .target(name: "PSICVulkan", dependencies: ["PSICEngine", "CVulkan"],
                plugins: ["ShaderPlugin"]),

        // The model file: float transforms, integer entropy model, CDF tables.
        .target(name: "PSICModel", dependencies: ["PSICEngine"]),

        // The codec: image → analysis → entropy model → coder → stream, and back.
        .target(name: "PSICCodec",
                dependencies: ["PSICEngine", "PSICCPU", "PSICVulkan", "PSICModel", "PSICEntropy", "PSICImage"]),
        // Kernel benchmarks at the codec's layer shapes, on any backend.
        .target(name: "PSICBenchmarks", dependencies: ["PSICEngine"]),
        // The HTTP encoding server (`psic serve`): Hummingbird 2, request batching, metrics.
        .target(name: "PSICServer",
                dependencies: ["PSICCodec", "PSICImage", "PSICEntropy", "PSICModel", "PSICEngine",
                               .product(name: "Hummingbird", package: "hummingbird"),
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "Metrics", package: "swift-metrics"),
                               .product(name: "Prometheus", package: "swift-prometheus"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                               .product(name: "UnixSignals", package: "swift-service-lifecycle")]),
        // Options and helpers the command-line tools share.
        .target(name: "PSICCommandLine",
                dependencies: ["PSICCodec", "PSICEntropy", "PSICModel", "PSICServer", "PSICImage",
                               .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // The command-line tool.
        .executableTarget(name: "psic",
                          dependencies: ["PSICCodec", "PSICBenchmarks", "PSICEngine", "PSICCPU", "PSICVulkan", "PSICModel", "PSICEntropy", "PSICImage",
                                         "PSICServer", "PSICCommandLine", .product(name: "Logging", package: "swift-log"),
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // The server's loopback load tester. A tool of its own so that `psic` does not link
        // AsyncHTTPClient (and its TLS stack, the longest part of a release build).
        .executableTarget(name: "psic-loadtest",
                          dependencies: ["PSICCodec", "PSICImage", "PSICServer", "PSICCommandLine",
                                         .product(name: "Logging", package: "swift-log"),
                                         .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "AsyncHTTPClient", package: "async-http-client")]),
        .testTarget(name: "PSICServerTests",
                    dependencies: ["PSICServer", "PSICCodec", "PSICEngine", "PSICImage", "PSICEntropy", "PSICModel", "PSICCommandLine",
                                   .product(name: "AsyncHTTPClient", package: "async-http-client")]),
        .testTarget(name: "PSICCodecTests", dependencies: ["PSICCodec"]),
        .testTarget(name: "PSICCommandLineTests", dependencies: ["PSICCommandLine"]),

        // Image I/O (libpng).
        .target(name: "PSICImage", dependencies: ["CPNG"]),

        // Entropy coding (rANS, CDF tables, sampler) and the stream container; no dependencies.
        .target(name: "PSICEntropy"),
        // libFuzzer target for the stream parser and decoder (Tools/fuzz/run-stream-fuzz.sh).
        .executableTarget(name: "PSICStreamFuzz", dependencies: ["PSICEntropy"]),
        .testTarget(name: "PSICEntropyTests", dependencies: ["PSICEntropy"]),

        .testTarget(name: "PSICImageTests", dependencies: ["PSICImage"], exclude: ["Fixtures"]),
        .testTarget(name: "PSICEngineTests",
                    dependencies: ["PSICEngine", "PSICCPU", "PSICVulkan"]),
        .testTarget(name: "PSICBenchmarksTests",
                    dependencies: ["PSICBenchmarks", "PSICEngine", "PSICCPU", "PSICVulkan"]),
    ]
)
