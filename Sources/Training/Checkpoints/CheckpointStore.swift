import Foundation
import Preference

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `manifest.json`: the last file written into a checkpoint. A directory is a complete
/// checkpoint only when its manifest is present and every file it lists has the listed
/// size and SHA-256.
public struct CheckpointManifest: Codable, Equatable, Sendable {
    public struct FileEntry: Codable, Equatable, Sendable {
        public var bytes: Int
        public var sha256: String
    }
    public var formatVersion: Int = 1
    /// Optimizer steps taken when the checkpoint was written.
    public var step: Int
    /// Relative path -> size and digest, for every file of the checkpoint except the manifest.
    public var files: [String: FileEntry]

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", step, files
    }
}

/// The checkpoints under an output directory: atomic saves, verification, rotation and
/// the choice of what to resume from.
///
/// A save writes everything into `OUT/.tmp-<name>-<pid>/`, fsyncs each file, writes
/// `manifest.json` last (also fsync'd), fsyncs the directory, renames it to `OUT/<name>`
/// (an existing `<name>` is first moved aside to `.old-<name>-<pid>` and removed only after
/// the rename) and fsyncs OUT. A crash at any moment leaves either the previous complete
/// checkpoint or the new one, plus temporaries that the next run removes.
public struct CheckpointStore: Sendable {
    public let outputDirectory: URL

    public static let manifestName = "manifest.json"
    public static let finalName = "final"
    public static let checkpointPrefix = "checkpoint-"
    private static let temporaryPrefix = ".tmp-"
    private static let asidePrefix = ".old-"

    public init(outputDirectory: URL) { self.outputDirectory = outputDirectory }

    public static func checkpointName(step: Int) -> String { "\(checkpointPrefix)\(step)" }

    // MARK: - Saving

    /// Writes a checkpoint named `name` (e.g. `checkpoint-40`, `final`) atomically.
    /// `writeContents` fills the given (empty, temporary) directory; every regular file it
    /// leaves there is listed in the manifest. On any error the temporary directory is
    /// removed and the previous checkpoint of that name, if any, is left in place. Files that
    /// `digests` saw written (pass it to the writers) are not read back for the manifest.
    @discardableResult
    public func save(
        name: String, step: Int, digests: CheckpointDigests = CheckpointDigests(), writeContents: (URL) throws -> Void
    ) throws -> URL {
        let fileManager = FileManager.default
        let pid = ProcessInfo.processInfo.processIdentifier
        let temporary = outputDirectory.appendingPathComponent("\(Self.temporaryPrefix)\(name)-\(pid)")
        let target = outputDirectory.appendingPathComponent(name)
        do {
            if fileManager.fileExists(atPath: temporary.path) { try fileManager.removeItem(at: temporary) }
            try fileManager.createDirectory(at: temporary, withIntermediateDirectories: true)
            try writeContents(temporary)

            var files: [String: CheckpointManifest.FileEntry] = [:]
            for relative in try Self.regularFiles(under: temporary) where relative != Self.manifestName {
                let url = temporary.appendingPathComponent(relative)
                try Self.fsync(path: url.path)
                files[relative] = try digests.entry(of: url)
            }
            let manifest = CheckpointManifest(step: step, files: files)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let manifestURL = temporary.appendingPathComponent(Self.manifestName)
            try encoder.encode(manifest).write(to: manifestURL)
            try Self.fsync(path: manifestURL.path)
            try Self.fsync(path: temporary.path)

            let aside = outputDirectory.appendingPathComponent("\(Self.asidePrefix)\(name)-\(pid)")
            let replacing = fileManager.fileExists(atPath: target.path)
            if replacing {
                if fileManager.fileExists(atPath: aside.path) { try fileManager.removeItem(at: aside) }
                try fileManager.moveItem(at: target, to: aside)
            }
            try fileManager.moveItem(at: temporary, to: target)
            try Self.fsync(path: outputDirectory.path)
            if replacing { try? fileManager.removeItem(at: aside) }
            return target
        } catch {
            try? fileManager.removeItem(at: temporary)
            throw TrainingError.output("could not save \(target.path): \(error)")
        }
    }

    /// Removes complete `checkpoint-<step>` directories beyond the newest `keep` (0 = keep all).
    /// `final/` is never removed. Returns what was removed.
    @discardableResult
    public func rotate(keep: Int) throws -> [URL] {
        guard keep > 0 else { return [] }
        let steps = checkpointSteps().sorted(by: >)
        var removed: [URL] = []
        for step in steps.dropFirst(keep) {
            let url = outputDirectory.appendingPathComponent(Self.checkpointName(step: step))
            try remove(url)
            removed.append(url)
        }
        return removed
    }

    /// Removes a checkpoint directory without ever leaving a torn one under its name: it is
    /// first renamed to a temporary name (atomic), then deleted file by file.
    public func remove(_ url: URL) throws {
        let doomed = outputDirectory.appendingPathComponent(
            "\(Self.temporaryPrefix)delete-\(url.lastPathComponent)-\(ProcessInfo.processInfo.processIdentifier)")
        if FileManager.default.fileExists(atPath: doomed.path) { try FileManager.default.removeItem(at: doomed) }
        try FileManager.default.moveItem(at: url, to: doomed)
        try FileManager.default.removeItem(at: doomed)
    }

    /// Cleans what an interrupted save left: temporaries are removed; a checkpoint moved
    /// aside whose replacement never landed is moved back. Returns one message per action.
    @discardableResult
    public func recoverInterruptedSaves() -> [String] {
        let fileManager = FileManager.default
        guard let names = try? fileManager.contentsOfDirectory(atPath: outputDirectory.path) else { return [] }
        var messages: [String] = []
        for name in names.sorted() {
            let url = outputDirectory.appendingPathComponent(name)
            if name.hasPrefix(Self.temporaryPrefix) {
                try? fileManager.removeItem(at: url)
                messages.append("removed the unfinished save \(url.path)")
            } else if name.hasPrefix(Self.asidePrefix) {
                // .old-<name>-<pid>
                var original = String(name.dropFirst(Self.asidePrefix.count))
                if let dash = original.lastIndex(of: "-") { original = String(original[..<dash]) }
                let target = outputDirectory.appendingPathComponent(original)
                if fileManager.fileExists(atPath: target.path) {
                    try? fileManager.removeItem(at: url)
                } else if (try? fileManager.moveItem(at: url, to: target)) != nil {
                    messages.append("restored \(target.path), whose replacement was interrupted")
                }
            }
        }
        return messages
    }

    // MARK: - Finding and verifying

    /// Steps of the `checkpoint-<step>` directories present (complete or not).
    public func checkpointSteps() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: outputDirectory.path)) ?? []
        return names.compactMap { name in
            name.hasPrefix(Self.checkpointPrefix) ? Int(name.dropFirst(Self.checkpointPrefix.count)) : nil
        }
    }

    /// Checks a checkpoint directory against its manifest; returns the manifest.
    public static func verify(_ directory: URL) throws -> CheckpointManifest {
        let manifestURL = directory.appendingPathComponent(manifestName)
        guard let data = FileManager.default.contents(atPath: manifestURL.path) else {
            throw TrainingError.checkpoint("\(directory.path) has no \(manifestName): the save did not finish")
        }
        let manifest: CheckpointManifest
        do { manifest = try JSONDecoder().decode(CheckpointManifest.self, from: data) } catch {
            // The manifest is written last: one that does not read means a save that did not finish, or damage.
            throw TrainingError.checkpoint(
                "\(manifestURL.path) is not a valid manifest: \(FileProblem.cause(of: error, in: [UInt8](data))); "
                    + "the checkpoint is incomplete or corrupted; --resume auto skips it, or remove \(directory.path) (or restore it from a copy)")
        }
        // Every save lists at least its weights: an empty list is an edited or foreign manifest.
        guard !manifest.files.isEmpty else {
            throw TrainingError.checkpoint("\(manifestURL.path) lists no files: the checkpoint is incomplete")
        }
        for (relative, expected) in manifest.files.sorted(by: { $0.key < $1.key }) {
            let url = directory.appendingPathComponent(relative)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw TrainingError.checkpoint("\(url.path) listed in the manifest is missing")
            }
            let (digest, bytes) = try SHA256.hexOfFile(at: url)
            guard bytes == expected.bytes, digest == expected.sha256 else {
                throw TrainingError.checkpoint(
                    "\(url.path) does not match its manifest (\(bytes) bytes, expected \(expected.bytes); checksum "
                        + (digest == expected.sha256 ? "ok" : "differs") + "): the checkpoint is corrupted")
            }
        }
        return manifest
    }

    /// The newest complete checkpoint (by manifest step, `final/` included, `final/` preferred
    /// on a tie), skipping incomplete or corrupted ones; `skipped` gets one message per skip.
    public func newestComplete(skipped: inout [String]) -> (url: URL, manifest: CheckpointManifest)? {
        var candidates: [(step: Int, url: URL)] = checkpointSteps().map {
            ($0, outputDirectory.appendingPathComponent(Self.checkpointName(step: $0)))
        }
        let finalURL = outputDirectory.appendingPathComponent(Self.finalName)
        if FileManager.default.fileExists(atPath: finalURL.path) {
            // An unreadable manifest gives final/ no step to rank it by: said here, never resumed from.
            if let finalStep = try? JSONDecoder().decode(
                CheckpointManifest.self, from: Data(contentsOf: finalURL.appendingPathComponent(Self.manifestName))).step {
                candidates.append((finalStep, finalURL))
            } else {
                do { _ = try Self.verify(finalURL) } catch { skipped.append("skipping \(finalURL.path): \(error)") }
            }
        }
        candidates.sort { $0.step != $1.step ? $0.step > $1.step : $0.url.lastPathComponent == Self.finalName }
        for candidate in candidates {
            do {
                let manifest = try Self.verify(candidate.url)
                return (candidate.url, manifest)
            } catch {
                skipped.append("skipping \(candidate.url.path): \(error)")
            }
        }
        return nil
    }

    /// Resolves `--resume`: `auto` = the newest complete checkpoint in OUT (nil when there is
    /// none: a fresh start); a directory with a manifest = that checkpoint (verified); any
    /// other directory = the newest complete checkpoint inside it (an error if none).
    public static func resolveResume(
        _ argument: String, outputDirectory: URL, skipped: inout [String]
    ) throws -> URL? {
        if argument == "auto" {
            return CheckpointStore(outputDirectory: outputDirectory).newestComplete(skipped: &skipped)?.url
        }
        let url = URL(fileURLWithPath: argument)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TrainingError.checkpoint("--resume \(argument): no such directory")
        }
        if FileManager.default.fileExists(atPath: url.appendingPathComponent(manifestName).path) {
            _ = try verify(url)
            return url
        }
        guard let found = CheckpointStore(outputDirectory: url).newestComplete(skipped: &skipped) else {
            throw TrainingError.checkpoint(
                "--resume \(argument): no complete checkpoint in this directory" + (skipped.isEmpty ? "" : " (\(skipped.joined(separator: "; ")))"))
        }
        return found.url
    }

    // MARK: - Output directory checks

    /// Creates OUT if needed and checks it is writable and has `requiredBytes` free.
    public static func prepareOutputDirectory(_ url: URL, requiredBytes: Int) throws {
        let fileManager = FileManager.default
        do { try fileManager.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            // Foundation's own text here is "The operation could not be completed": say what is in the way.
            throw TrainingError.output("cannot create \(url.path): \(whyNotCreatable(url) ?? error.localizedDescription); choose another --out")
        }
        let probe = url.appendingPathComponent(".write-test-\(ProcessInfo.processInfo.processIdentifier)")
        guard fileManager.createFile(atPath: probe.path, contents: Data([1])) else {
            throw TrainingError.output("\(url.path) is not writable; choose another --out or fix its permissions")
        }
        try? fileManager.removeItem(at: probe)
        if let free = freeBytes(at: url), free < requiredBytes {
            throw TrainingError.output(
                "\(url.path) has \(describe(bytes: free)) free, a checkpoint needs about \(describe(bytes: requiredBytes)); "
                    + "free some space or lower --keep-checkpoints")
        }
    }

    /// Why no directory can be made at `url`: it or its nearest existing ancestor is a file,
    /// or that ancestor is not writable (read-only file system, permissions). nil if neither.
    static func whyNotCreatable(_ url: URL) -> String? {
        var ancestor = url
        while ancestor.path != "/" && !FileManager.default.fileExists(atPath: ancestor.path) { ancestor.deleteLastPathComponent() }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: ancestor.path, isDirectory: &isDirectory) && !isDirectory.boolValue {
            return "\(ancestor.path) is a file, not a directory"
        }
        if access(ancestor.path, W_OK) != 0 { return "\(ancestor.path) is not writable (\(String(cString: strerror(errno))))" }
        return nil
    }

    /// Bytes for a message: KiB below 10 MiB (a small disk must not read "0 MiB free"), else MiB.
    static func describe(bytes: Int) -> String {
        bytes >= 10 << 20 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB"
    }

    /// Free bytes on the file system holding `url` (nil if unknown).
    public static func freeBytes(at url: URL) -> Int? {
        var stats = statvfs()
        guard statvfs(url.path, &stats) == 0 else { return nil }
        return Int(stats.f_bavail) * Int(stats.f_frsize)
    }

    // MARK: - File helpers

    /// Relative paths of the regular files under `directory`, sorted.
    static func regularFiles(under directory: URL) throws -> [String] {
        let base = directory.standardizedFileURL.path
        guard let enumerator = FileManager.default.enumerator(atPath: base) else { return [] }
        var out: [String] = []
        while let relative = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: base + "/" + relative, isDirectory: &isDirectory), !isDirectory.boolValue {
                out.append(relative)
            }
        }
        return out.sorted()
    }

    /// fsync(2) a file or directory so a rename after it cannot overtake its contents.
    static func fsync(path: String) throws {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw TrainingError.output("cannot open \(path) to flush it (errno \(errno))") }
        defer { close(descriptor) }
        #if canImport(Glibc)
        guard Glibc.fsync(descriptor) == 0 else { throw TrainingError.output("fsync of \(path) failed (errno \(errno))") }
        #else
        guard Darwin.fsync(descriptor) == 0 else { throw TrainingError.output("fsync of \(path) failed (errno \(errno))") }
        #endif
    }
}
