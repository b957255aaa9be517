import Foundation

/// An error while processing one file of a batch, naming the file: with many inputs, an error
/// that does not say which one failed leaves the user to bisect the batch.
public struct FileError: Error, CustomStringConvertible {
    public let path: String
    public let underlying: any Error
    public var description: String { "\(path): \(underlying)" }

    public init(path: String, underlying: any Error) {
        self.path = path
        self.underlying = underlying
    }
}

/// A file the system would not read (missing, a folder, no permission), with its reason.
public struct UnreadableFile: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { "cannot read it (\(reason))" }
}

/// Runs `body` on the file at `url`, attaching the file's path to any error (once: an error
/// that already names a file passes through).
public func withFile<T>(_ url: URL, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as FileError { throw e } catch { throw FileError(path: url.path, underlying: error) }
}
