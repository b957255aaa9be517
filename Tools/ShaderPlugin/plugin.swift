import Foundation
import PackagePlugin

/// Compiles every `Shaders/*.comp` of the package to SPIR-V and embeds it in the target as Swift source.
///
/// One build command per shader, so editing one kernel recompiles only that kernel; every
/// `Shaders/*.glsl` include is an input of every command because glslang gives us no
/// dependency file and a stale include would silently ship an old kernel.
@main struct ShaderPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let shaderDir = context.package.directoryURL.appendingPathComponent("Shaders")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: shaderDir.path)) ?? []
        let shaders = files.filter { $0.hasSuffix(".comp") }.sorted()
        let includes = files.filter { $0.hasSuffix(".glsl") }.sorted().map { shaderDir.appendingPathComponent($0) }
        guard !shaders.isEmpty else { return [] }

        let embedder = try context.tool(named: "ShaderEmbedder").url
        // context.tool(named:) only knows tools built by the package, so find the system
        // glslangValidator ourselves; the embedder searches again if we pass nothing.
        let glslang = Self.findExecutable("glslangValidator")

        return shaders.map { file in
            let input = shaderDir.appendingPathComponent(file)
            let base = String(file.dropLast(".comp".count))
            let output = context.pluginWorkDirectoryURL.appendingPathComponent("\(base).spv.swift")
            var args = [input.path, output.path, "--include", shaderDir.path]
            if let glslang { args += ["--glslang", glslang] }
            return .buildCommand(displayName: "Compiling shader \(file)",
                                 executable: embedder,
                                 arguments: args,
                                 inputFiles: [input] + includes,
                                 outputFiles: [output])
        }
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"]
        for dir in dirs {
            let candidate = (dir as NSString).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
