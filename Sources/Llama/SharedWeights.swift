#if canImport(Glibc)
import Glibc
#endif
import CKernelSupport
import Foundation
import Kernels

/// One read-only copy of a frozen model's working weights (float32 or binary16, layout order)
/// that every process of a host maps: a file in shared memory written once by its creator,
/// mapped `MAP_SHARED` by the others, so N ranks on a host hold one reference, not N.
///
/// The file never has a name (memfd_create): the others open it through the creator's
/// descriptor, `/proc/<creator pid>/fd/<n>` (`address`), while the creator holds it open;
/// the creator then closes its descriptor (`closeDescriptor`), and the pages go with the last
/// mapping. So nothing can be left behind in /dev/shm, whatever ends the processes and when
/// (Ctrl-C or a kill while the ranks are still mapping it included), and two jobs on a host
/// can never meet through a name. Mappings are `PROT_READ`: a write through them faults
/// instead of changing every rank's reference.
public final class SharedWeights {
    /// Where another process of the host opens the file (`/proc/<pid>/fd/<n>`).
    public let address: String
    public let count: Int
    public let precision: Precision
    let float32: FloatBuffer?
    let float16: HalfBuffer?
    /// The creator's descriptor, open until `closeDescriptor` (-1: none).
    private var descriptor: Int32

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private init(address: String, count: Int, precision: Precision, mapping: UnsafeMutableRawPointer, bytes: Int,
                 descriptor: Int32 = -1) {
        self.address = address
        self.descriptor = descriptor
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

    /// The creator: a new nameless file holding `weights` in `precision` (rounded to binary16
    /// under fp16, as `LlamaModel.loadWeights` does), kept open until `closeDescriptor`.
    public static func create(weights: UnsafeBufferPointer<Float>, precision: Precision) throws -> SharedWeights {
        let bytes = byteCount(weights.count, precision)
        let fd = dpo_anonymous_shared_file("dpo-reference")
        guard fd >= 0 else { throw Failure(description: "cannot create a shared-memory file: \(String(cString: strerror(errno)))") }
        // Reserved up front: memory short is an error here, not a SIGBUS while copying.
        let reserved = posix_fallocate(fd, 0, off_t(bytes))
        guard reserved == 0 else {
            close(fd)
            throw Failure(description: "cannot reserve \(bytes) bytes of shared memory: \(String(cString: strerror(reserved)))")
        }
        guard let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), raw != MAP_FAILED else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "cannot map \(bytes) bytes of shared memory: \(reason)")
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
        return SharedWeights(address: "/proc/\(getpid())/fd/\(fd)", count: weights.count, precision: precision, mapping: raw,
                             bytes: bytes, descriptor: fd)
    }

    /// Another process of the host: maps the creator's file at `address` read-only (its size
    /// must be `count` weights), while the creator still holds it open.
    public static func open(address: String, count: Int, precision: Precision) throws -> SharedWeights {
        let bytes = byteCount(count, precision)
        let fd = Glibc.open(address, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open \(address): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, Int(status.st_size) == bytes else {
            throw Failure(description: "\(address) holds \(status.st_size) bytes, expected \(bytes) (\(count) weights in \(precision.rawValue))")
        }
        guard let raw = mmap(nil, bytes, PROT_READ, MAP_SHARED, fd, 0), raw != MAP_FAILED else {
            throw Failure(description: "cannot map \(address): \(String(cString: strerror(errno)))")
        }
        return SharedWeights(address: address, count: count, precision: precision, mapping: raw, bytes: bytes)
    }

    /// The creator, once every process has mapped the file (or given up): closes its descriptor,
    /// so `address` opens nothing any more; the mappings stay valid.
    public func closeDescriptor() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    deinit { closeDescriptor() }
}
