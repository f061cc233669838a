#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Kernels

/// One read-only copy of a frozen model's working weights (float32 or binary16, layout order)
/// that every process of a host maps: a file in /dev/shm written once by its creator, mapped
/// `MAP_SHARED` by the others, so N ranks on a host hold one reference, not N.
///
/// Lifetime: the creator removes the file's name as soon as every rank has mapped it
/// (`unlink`), so nothing is left in /dev/shm whatever happens to the processes later (a
/// killed rank included); the pages go when the last mapping does. Mappings are `PROT_READ`:
/// a write through them faults instead of changing every rank's reference.
public final class SharedWeights {
    public let path: String
    public let count: Int
    public let precision: Precision
    let float32: FloatBuffer?
    let float16: HalfBuffer?

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private init(path: String, count: Int, precision: Precision, mapping: UnsafeMutableRawPointer, bytes: Int) {
        self.path = path
        self.count = count
        self.precision = precision
        if precision == .fp32 {
            float32 = FloatBuffer(takingMapping: mapping.bindMemory(to: Float.self, capacity: count), count: count, bytes: bytes)
            float16 = nil
        } else {
            float16 = HalfBuffer(takingMapping: mapping.bindMemory(to: UInt16.self, capacity: count), count: count, bytes: bytes)
            float32 = nil
        }
    }

    static func byteCount(_ count: Int, _ precision: Precision) -> Int { max(1, count) * (precision == .fp32 ? 4 : 2) }

    /// The creator: a new file at `path` (refused if it exists) holding `weights` in `precision`
    /// (rounded to binary16 under fp16, as `LlamaModel.loadWeights` does).
    public static func create(path: String, weights: UnsafeBufferPointer<Float>, precision: Precision) throws -> SharedWeights {
        let bytes = byteCount(weights.count, precision)
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // Reserved up front: a full /dev/shm is an error here, not a SIGBUS while copying.
        let reserved = posix_fallocate(fd, 0, off_t(bytes))
        guard reserved == 0 else {
            unlink(path)
            throw Failure(description: "cannot reserve \(bytes) bytes for \(path): \(String(cString: strerror(reserved)))")
        }
        guard let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), raw != MAP_FAILED else {
            let reason = String(cString: strerror(errno))
            unlink(path)
            throw Failure(description: "cannot map \(path) (\(bytes) bytes): \(reason)")
        }
        if let base = weights.baseAddress {
            if precision == .fp32 {
                raw.bindMemory(to: Float.self, capacity: weights.count).update(from: base, count: weights.count)
            } else {
                let half = raw.bindMemory(to: UInt16.self, capacity: weights.count)
                Parallel.forChunks(weights.count, minimumChunk: 1 << 16) { range in
                    Half.fromFloat(base + range.lowerBound, half + range.lowerBound, count: range.count)
                }
            }
        }
        mprotect(raw, bytes, PROT_READ)
        return SharedWeights(path: path, count: weights.count, precision: precision, mapping: raw, bytes: bytes)
    }

    /// Another process of the host: maps the creator's file read-only (its size must be `count` weights).
    public static func open(path: String, count: Int, precision: Precision) throws -> SharedWeights {
        let bytes = byteCount(count, precision)
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, Int(status.st_size) == bytes else {
            throw Failure(description: "\(path) holds \(status.st_size) bytes, expected \(bytes) (\(count) weights in \(precision.rawValue))")
        }
        guard let raw = mmap(nil, bytes, PROT_READ, MAP_SHARED, fd, 0), raw != MAP_FAILED else {
            throw Failure(description: "cannot map \(path): \(String(cString: strerror(errno)))")
        }
        return SharedWeights(path: path, count: count, precision: precision, mapping: raw, bytes: bytes)
    }

    /// Removes the file's name (the creator, once every process has mapped it); mappings stay valid.
    public func unlinkName() { unlink(path) }
}
