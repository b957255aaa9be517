import ArgumentParser
import PSICEntropy

/// Checks a `--format-version` value: one of the stream format versions this build writes.
public func validateFormatVersion(_ version: UInt16?) throws {
    let formats = PSICStream.readableFormatVersions
    if let version, !formats.contains(version) {
        throw ValidationError("--format-version must be in \(formats.lowerBound)...\(formats.upperBound)")
    }
}
