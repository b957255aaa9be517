/// Shared argument checks for layer initialisers.
enum LayerValidation {
    static func checkGeometry(name: String, inChannels: Int, outChannels: Int, kernelSize: Int,
                              stride: Int, padding: Int) throws {
        guard inChannels > 0, outChannels > 0 else {
            throw EngineError.invalidLayer(name: name, reason: "channel counts must be positive")
        }
        guard kernelSize > 0, kernelSize % 2 == 1 else {
            throw EngineError.invalidLayer(name: name, reason: "kernel size must be odd and positive, got \(kernelSize)")
        }
        guard stride == 1 || stride == 2 else {
            throw EngineError.invalidLayer(name: name, reason: "stride must be 1 or 2, got \(stride)")
        }
        guard padding >= 0, padding < kernelSize else {
            throw EngineError.invalidLayer(name: name, reason: "padding must be in 0..<kernelSize")
        }
    }

    static func checkCount(name: String, what: String, _ got: Int, _ expected: Int) throws {
        guard got == expected else {
            throw EngineError.invalidLayer(name: name, reason: "\(what) has \(got) values, expected \(expected)")
        }
    }
}
