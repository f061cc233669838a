import XCTest
import CKernelSupport
@testable import Kernels

final class BLASCoreTests: XCTestCase {
    /// The library must end up on the best kernels the CPU supports, whatever
    /// OpenBLAS guessed at load time or OPENBLAS_CORETYPE asked for.
    func testBestCoreIsSelected() {
        let name = BLAS.ensureBestCore()
        if let best = dpo_cpu_best_blas_core().map({ String(cString: $0) }), getenv(BLAS.forcedCoreVariable) == nil {
            let wide = ["SkylakeX": ["SkylakeX", "Cooperlake", "SapphireRapids"],
                        "Haswell": ["Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"]]
            XCTAssertTrue((wide[best] ?? [best]).map { $0.lowercased() }.contains(name.lowercased()),
                          "CPU supports \(best) but OpenBLAS uses \(name)")
        }
        XCTAssertNotEqual(name.lowercased(), "prescott")
    }
}
