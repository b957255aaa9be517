import Foundation

/// The compute kernels, compiled from Shaders/*.comp at build time by ShaderPlugin, which
/// adds one `<name>_hex` string per shader to this namespace.
enum ShaderLibrary {
    /// Every kernel the backend dispatches.
    enum Kernel: String, CaseIterable, Sendable {
        case conv2d
        case conv2d_subgroup
        case conv2d_winograd_input
        case conv2d_winograd_gemm
        case conv2d_winograd_output
        case conv_transpose2d
        case conv_transpose2d_subgroup
        case gdn
        case int_conv2d
        case int_conv_transpose2d

        var hex: String {
            switch self {
            case .conv2d: return ShaderLibrary.conv2d_hex
            case .conv2d_subgroup: return ShaderLibrary.conv2d_subgroup_hex
            case .conv2d_winograd_input: return ShaderLibrary.conv2d_winograd_input_hex
            case .conv2d_winograd_gemm: return ShaderLibrary.conv2d_winograd_gemm_hex
            case .conv2d_winograd_output: return ShaderLibrary.conv2d_winograd_output_hex
            case .conv_transpose2d: return ShaderLibrary.conv_transpose2d_hex
            case .conv_transpose2d_subgroup: return ShaderLibrary.conv_transpose2d_subgroup_hex
            case .gdn: return ShaderLibrary.gdn_hex
            case .int_conv2d: return ShaderLibrary.int_conv2d_hex
            case .int_conv_transpose2d: return ShaderLibrary.int_conv_transpose2d_hex
            }
        }

        /// SPIR-V words of the kernel: the embedded ones, or `<dir>/<kernel>.spv` when the
        /// environment variable `PSIC_VULKAN_SHADER_DIR` names a folder holding that file.
        /// The override is for kernel tuning (recompile one shader with glslangValidator and
        /// re-run `psic bench kernels` without rebuilding the package); a file that cannot be
        /// read or is not SPIR-V falls back to the embedded kernel.
        var spirv: [UInt32] {
            if let dir = ProcessInfo.processInfo.environment["PSIC_VULKAN_SHADER_DIR"],
               let words = ShaderLibrary.loadSPIRV(path: dir + "/" + rawValue + ".spv") {
                return words
            }
            return ShaderLibrary.decode(hex)
        }
    }

    /// The words of a SPIR-V file, or nil when it cannot be read or lacks the SPIR-V magic number.
    static func loadSPIRV(path: String) -> [UInt32]? {
        guard let data = FileManager.default.contents(atPath: path), data.count >= 20, data.count % 4 == 0 else {
            return nil
        }
        let words = data.withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)) }
        return words.first == 0x0723_0203 ? words : nil
    }

    /// Decodes the little-endian hex bytes written by ShaderEmbedder.
    static func decode(_ hex: String) -> [UInt32] {
        var words = [UInt32]()
        words.reserveCapacity(hex.utf8.count / 8)
        var word: UInt32 = 0
        var nibbles = 0
        for c in hex.utf8 {
            let v = c <= 57 ? UInt32(c - 48) : UInt32(c - 87)  // '0'...'9', 'a'...'f'
            // Byte k of the word is hex digits 2k, 2k+1 (high nibble first).
            let byte = nibbles / 2
            let shift = UInt32(byte * 8 + (nibbles % 2 == 0 ? 4 : 0))
            word |= v << shift
            nibbles += 1
            if nibbles == 8 {
                words.append(word)
                word = 0
                nibbles = 0
            }
        }
        return words
    }
}
