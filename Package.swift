// swift-tools-version:6.0
// swift-dpo: data-parallel DPO for LLaMA-architecture models on CPUs.
// Layers (arrows = may import):
//   dpo ─> DPOTools (demo, experiments, plots, benches) ─> Training
//          Training ─> Llama ─> Kernels ─> CKernelSupport, COpenBLAS
//              │    └─> Preference ─> Tokenization ─> Templating
//              └─> Distributed ─> CMPIShim ─> COpenMPI
import PackageDescription

/// Numeric targets are always compiled with optimisation: Swift debug builds are
/// 10-100x slower in numeric loops, and unchecked arithmetic is what the kernels want.
let numericSettings: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked"]),
]

let package = Package(
    name: "swift-dpo",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "dpo", targets: ["dpo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // MARK: - System libraries and C shims
        .systemLibrary(
            name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "COpenMPI", path: "Sources/COpenMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]),
        .target(
            name: "CKernelSupport", dependencies: ["COpenBLAS"],
            cSettings: [.unsafeFlags(["-O3"])]),
        .target(
            name: "CMPIShim", dependencies: ["COpenMPI"],
            cSettings: [.unsafeFlags(["-O3"])]),

        // MARK: - Swift layers
        .target(name: "Kernels", dependencies: ["CKernelSupport", "COpenBLAS"], swiftSettings: numericSettings),
        .target(name: "Llama", dependencies: ["Kernels"], swiftSettings: numericSettings),
        .target(name: "Templating"),
        .target(name: "Tokenization", dependencies: ["Templating"], swiftSettings: numericSettings),
        .target(name: "Preference", dependencies: ["Tokenization"], swiftSettings: numericSettings),
        .target(name: "Distributed", dependencies: ["CMPIShim"], swiftSettings: numericSettings),
        .target(
            name: "Training",
            dependencies: [
                "Llama", "Kernels", "Preference", "Tokenization", "Distributed", "Yams",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: numericSettings),
        .target(
            name: "DPOTools",
            dependencies: ["Training", "Llama", "Kernels", "Preference", "Tokenization", "Distributed"],
            swiftSettings: numericSettings),
        .executableTarget(
            name: "dpo",
            dependencies: [
                "DPOTools", "Training", "Llama", "Kernels", "Preference", "Tokenization", "Distributed",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // MARK: - Tests
        .target(name: "TestSupport", dependencies: ["Kernels"], path: "Tests/TestSupport"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "TestSupport"]),
        .testTarget(name: "LlamaTests", dependencies: ["Llama", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TemplatingTests", dependencies: ["Templating"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TokenizationTests", dependencies: ["Tokenization", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "PreferenceTests", dependencies: ["Preference", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "TestSupport"]),
        .testTarget(
            name: "TrainingTests",
            dependencies: ["Training", "DPOTools", "Llama", "Preference", "Tokenization", "Distributed", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "CLITests",
            dependencies: [
                "dpo", "Training", "Preference", "TestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
    ],
    swiftLanguageModes: [.v5]
)
