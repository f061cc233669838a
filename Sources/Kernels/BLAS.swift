import CKernelSupport
import COpenBLAS

/// Process-wide OpenBLAS set-up: the kernels for this CPU, and the thread count.
public enum BLAS {
    /// Environment variable that forces an OpenBLAS core (e.g. `Haswell`) whatever the CPU says.
    public static let forcedCoreVariable = "DPO_BLAS_CORETYPE"

    /// Chooses the best OpenBLAS kernels for this CPU once; every kernel entry calls this.
    /// Returns the core name in use (what `openblas_get_corename()` reports).
    @discardableResult
    public static func ensureBestCore() -> String {
        if let name = selectedCore { return name }
        let forced = getenv(forcedCoreVariable).map { String(cString: $0) }
        let name: String
        if let forced, !forced.isEmpty {
            name = forced.withCString { String(cString: dpo_blas_select_core($0)) }
        } else {
            name = String(cString: dpo_blas_select_core(nil))
        }
        selectedCore = name
        return name
    }

    nonisolated(unsafe) private static var selectedCore: String?

    /// The OpenBLAS core in use now.
    public static var coreName: String { String(cString: dpo_blas_corename()) }

    /// Threads OpenBLAS may use for one call.
    public static var threads: Int {
        get { Int(dpo_blas_get_threads()) }
        set { ensureBestCore(); dpo_blas_set_threads(Int32(max(1, newValue))) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
