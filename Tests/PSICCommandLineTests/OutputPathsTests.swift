import ArgumentParser
import Foundation
import PSICCommandLine
import Testing

/// A fresh folder with `files` (relative paths; a trailing `/` makes a folder) in it.
private func scratch(_ files: [String]) throws -> URL {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("psic-cli-\(UUID().uuidString)")
    for f in files {
        let url = root.appendingPathComponent(f)
        if f.hasSuffix("/") {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } else {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("x".utf8).write(to: url)
        }
    }
    return root
}

private func message(_ body: () throws -> Void) -> String {
    do { try body() } catch { return "\(error)" }
    return "no error"
}

@Suite struct OutputPathsTests {
    @Test func oneFileWritesTheNamedFileAndAFolderOrSlashMeansAFolder() throws {
        let root = try scratch(["a.png", "photos/b.png"])
        defer { try? FileManager.default.removeItem(at: root) }
        let a = root.appendingPathComponent("a.png")
        let file = try OutputPaths(inputs: [a], arguments: [a.path], output: root.path + "/x.psic", newExtension: "psic", overwrite: false)
        #expect(file[0].lastPathComponent == "x.psic")
        let slash = try OutputPaths(inputs: [a], arguments: [a.path], output: root.path + "/streams/", newExtension: "psic", overwrite: false)
        #expect(slash[0].path == root.path + "/streams/a.psic")
        // A folder argument holding one photo is still folder mode: -o names a folder.
        let folder = root.appendingPathComponent("photos")
        let inFolder = try OutputPaths(inputs: [folder.appendingPathComponent("b.png")], arguments: [folder.path],
                                       output: root.path + "/out", newExtension: "psic", overwrite: false)
        #expect(inFolder[0].path == root.path + "/out/b.psic")
        let beside = try OutputPaths(inputs: [a], arguments: [a.path], output: nil, newExtension: "psic", suffixes: ["-s0", "-s1"],
                                     overwrite: false)
        #expect(beside[0, suffix: 1].path == root.path + "/a-s1.psic")
    }

    /// A named output file in a folder that does not exist is refused before any work.
    @Test func refusesAnOutputFileInAMissingFolder() throws {
        let root = try scratch(["a.png"])
        defer { try? FileManager.default.removeItem(at: root) }
        let a = root.appendingPathComponent("a.png")
        let text = message { _ = try OutputPaths(inputs: [a], arguments: [a.path], output: root.path + "/missing/x.psic", newExtension: "psic", overwrite: false) }
        #expect(text.contains("the folder '\(root.path)/missing' does not exist"), "\(text)")
        #expect(!FileManager.default.fileExists(atPath: root.path + "/missing"))
    }

    @Test func refusesToReplaceFilesUnlessForced() throws {
        let root = try scratch(["a.png", "a.psic"])
        defer { try? FileManager.default.removeItem(at: root) }
        let a = root.appendingPathComponent("a.png")
        let text = message { _ = try OutputPaths(inputs: [a], arguments: [a.path], output: nil, newExtension: "psic", overwrite: false) }
        #expect(text.contains("a.psic' already exists; pass --force"))
        #expect(try OutputPaths(inputs: [a], arguments: [a.path], output: nil, newExtension: "psic", overwrite: true)[0].lastPathComponent == "a.psic")
        // A link to an input is that input.
        let link = root.appendingPathComponent("b.psic")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: a)
        let b = root.appendingPathComponent("b.png")
        try Data("x".utf8).write(to: b)
        let viaLink = message { _ = try OutputPaths(inputs: [a, b], arguments: [a.path, b.path], output: nil, newExtension: "psic", overwrite: true) }
        #expect(viaLink.contains("is an input"), "\(viaLink)")
        // Decoding next to the source photo would replace it: refused even with --force.
        let s = root.appendingPathComponent("a.psic")
        let both = message {
            _ = try OutputPaths(inputs: [s, a], arguments: [s.path, a.path], output: nil, newExtension: "png", overwrite: true)
        }
        #expect(both.contains("is an input"))
    }

    @Test func refusesTwoInputsWritingOneFile() throws {
        let root = try scratch(["in/a.png", "in/a.PNG", "one/x.png", "two/x.png"])
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = root.appendingPathComponent("in")
        let files = try gatherInputs([folder.path], extensions: ["png"])
        #expect(files.count == 2)
        let text = message { _ = try OutputPaths(inputs: files, arguments: [folder.path], output: nil, newExtension: "psic", overwrite: true) }
        #expect(text.contains("would both be written to") && text.contains("a.psic"))
        let xs = ["one/x.png", "two/x.png"].map { root.appendingPathComponent($0) }
        let twoFolders = message {
            _ = try OutputPaths(inputs: xs, arguments: xs.map(\.path), output: root.path + "/out", newExtension: "psic", overwrite: false)
        }
        #expect(twoFolders.contains("would both be written to"))
        #expect(!FileManager.default.fileExists(atPath: root.path + "/out"), "a refused command created its output folder")
        // Next to their inputs they do not collide.
        #expect(try OutputPaths(inputs: xs, arguments: xs.map(\.path), output: nil, newExtension: "psic", overwrite: false).urls[0].count == 2)
    }

    @Test func gatheringSkipsSubfoldersAndRepeats() throws {
        let root = try scratch(["p/a.png", "p/b.PNG", "p/notes.txt", "p/deep/c.png", "p/folder.png/"])
        defer { try? FileManager.default.removeItem(at: root) }
        let p = root.appendingPathComponent("p")
        let files = try gatherInputs([p.path, p.appendingPathComponent("a.png").path], extensions: ["png"])
        #expect(files.map(\.lastPathComponent) == ["a.png", "b.PNG"])
    }

    /// A replaced file keeps its permissions and a link its target; a failure names the file.
    @Test func replacingKeepsPermissionsAndLinksAndFailuresNameTheFile() throws {
        let root = try scratch(["old.psic"])
        defer { try? FileManager.default.removeItem(at: root) }
        let fm = FileManager.default
        let target = root.appendingPathComponent("old.psic")
        try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: target.path)
        try writeOutput([1, 2, 3], to: target)
        #expect(try Data(contentsOf: target) == Data([1, 2, 3]))
        #expect((try fm.attributesOfItem(atPath: target.path)[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let link = root.appendingPathComponent("link.psic")
        try fm.createSymbolicLink(at: link, withDestinationURL: target)
        try writeOutput([4, 5], to: link)
        #expect(try fm.destinationOfSymbolicLink(atPath: link.path) == target.path, "the link was replaced by a file")
        #expect(try Data(contentsOf: target) == Data([4, 5]))
        let missing = root.appendingPathComponent("no/such/folder/x.psic")
        let text = message { try writeOutput([1], to: missing) }
        #expect(text.hasPrefix(missing.path + ": cannot write it"))
    }

    @Test func aFailingItemDoesNotStopTheBatch() async throws {
        struct Bad: Error {}
        let done = Counter()
        let text = Text()
        let progress = ProgressLine(total: 7, style: .log(interval: 3600), write: text.add)
        // As the commands do: the body reports its success, forEachItem the failures.
        let failed = await forEachItem(0..<7, jobs: 2, progress: progress) { i in
            if i % 3 == 0 { throw Bad() }
            done.add()
            progress.advance("\(i)")
        }
        #expect(failed == 3)
        #expect(done.value == 4)
        // Each failure on a line of its own; the log style's first line (nothing logged yet) and its last.
        let lines = text.value.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("psic: Bad") }.count == 3)
        #expect(lines.filter { $0.contains("files,") }.map { $0.prefix(11) } == ["psic: 1/7 f", "psic: 7/7 f"])
        #expect("\(BatchFailure(failed: 3, total: 7))" == "3 of 7 files failed (errors above)")
    }

    /// Within an item, details (a large image's tiles): a single item, which shows no bar, shows
    /// them too; into a log at most once per interval; on a terminal the line is cleared when the
    /// item is done.
    @Test func detailsShowTilesOfASingleImage() {
        let log = Text()
        let logged = ProgressLine(total: 1, style: .log(interval: 3600), write: log.add)
        logged.detail("big.png", "g_a tile 1/38")
        logged.detail("big.png", "g_a tile 2/38")
        logged.advance("big.png")
        #expect(log.value.hasPrefix("psic: big.png: g_a tile 1/38, "))
        #expect(log.value.split(separator: "\n").count == 1)
        let term = Text()
        let terminal = ProgressLine(total: 1, style: .terminal, write: term.add)
        terminal.detail("big.png", "g_s tile 5/38")
        terminal.advance("big.png")
        #expect(term.value == "\r\u{1B}[Kbig.png: g_s tile 5/38\r\u{1B}[K")
        let quiet = Text()
        let small = ProgressLine(total: 1, style: .terminal, write: quiet.add)
        small.advance("small.png")
        #expect(quiet.value == "", "one small image: nothing drawn")
        let batch = Text()
        let bar = ProgressLine(total: 2, style: .terminal, write: batch.add)
        bar.detail("a.png", "g_a tile 3/9")
        #expect(batch.value.hasSuffix("a.png: g_a tile 3/9"))
        bar.advance("a.png")
        #expect(batch.value.hasSuffix("  a.png"), "the detail goes with its item")
    }
}

/// Text a progress line wrote.
private final class Text: @unchecked Sendable {
    private let lock = NSLock()
    private var s = ""
    func add(_ t: String) { lock.lock(); s += t; lock.unlock() }
    var value: String { lock.lock(); defer { lock.unlock() }; return s }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
