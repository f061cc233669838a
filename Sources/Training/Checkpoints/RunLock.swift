import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive lock on an output directory: `OUT/.lock`, held with `flock(2)` for as long
/// as the run lives, so two trainers never write one OUT (the second would overwrite the
/// first one's checkpoints, metrics and `train_config.json`).
///
/// The kernel drops a `flock` when its file descriptor closes, which includes every kind of
/// exit (`kill -9`, a crash): a stale lock file never blocks the next run. The file holds the
/// owner's pid, host and start time, only to name it in the refusal.
///
/// Where it works: local file systems; NFS (Linux emulates `flock` with NFS byte-range
/// locks, seen across hosts); Lustre/GPFS/BeeGFS when mounted with lock support. Where the
/// file system refuses `flock` (e.g. Lustre with `-o noflock`, some FUSE mounts, `ENOLCK`
/// from an NFS server without lockd), `acquire` returns an unlocked `RunLock` whose
/// `warning` says two runs on this OUT will not be detected.
public final class RunLock {
    public static let fileName = ".lock"

    /// The locked file; nil when the file system cannot lock.
    private var descriptor: Int32?
    public let url: URL
    /// Set when the lock could not be taken for a reason other than another run holding it.
    public let warning: String?

    private init(url: URL, descriptor: Int32?, warning: String?) {
        self.url = url
        self.descriptor = descriptor
        self.warning = warning
    }

    deinit { release() }

    /// Takes the lock on `outputDirectory` (creating the directory), or throws naming the
    /// run that holds it.
    public static func acquire(outputDirectory: URL) throws -> RunLock {
        let url = outputDirectory.appendingPathComponent(fileName)
        do { try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true) } catch {
            throw TrainingError.output(
                "cannot create \(outputDirectory.path): \(CheckpointStore.whyNotCreatable(outputDirectory) ?? error.localizedDescription); choose another --out")
        }
        let descriptor = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw TrainingError.output("cannot open \(url.path) to lock the output directory: \(String(cString: strerror(errno)))")
        }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EWOULDBLOCK || code == EAGAIN {
                let owner = String(decoding: (try? Data(contentsOf: url)) ?? Data(), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                close(descriptor)
                throw TrainingError.output(
                    "\(outputDirectory.path) is in use by another run (\(owner.isEmpty ? "owner unknown" : owner)); "
                        + "wait for it to end, stop it, or choose another --out")
            }
            close(descriptor)
            return RunLock(url: url, descriptor: nil, warning:
                "warning: cannot lock \(url.path) (\(String(cString: strerror(code)))): this file system does not support flock, "
                    + "so a second run on this --out would not be detected")
        }
        let owner = "pid \(getpid()) on host \(ProcessInfo.processInfo.hostName), started \(ISO8601DateFormatter().string(from: Date()))\n"
        _ = ftruncate(descriptor, 0)
        _ = owner.withCString { pwrite(descriptor, $0, strlen($0), 0) }
        return RunLock(url: url, descriptor: descriptor, warning: nil)
    }

    /// Releases the lock (also done by `deinit` and, on any exit, by the kernel).
    public func release() {
        guard let descriptor else { return }
        _ = flock(descriptor, LOCK_UN)
        close(descriptor)
        self.descriptor = nil
    }
}
