// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "dedup",
    products: [
        .library(name: "Reactor", targets: ["Reactor"]),
        .executable(name: "Benchmarks", targets: ["Benchmarks"]),
    ],
    targets: [
        .target(
            name: "CEpoll",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CPostgres", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCrypto", providers: [.apt(["libssl-dev"])]),
        .target(
            name: "Reactor",
            dependencies: ["CEpoll", "CCrypto", "CHiredis", "CPostgres"]
        ),
        .target(name: "CAllocCounter"),
        .executableTarget(
            name: "Benchmarks",
            dependencies: ["Reactor", "CAllocCounter"],
            path: "Benchmarks"
        ),
        .testTarget(
            name: "ReactorTests",
            dependencies: ["Reactor"],
            path: "Tests/ReactorTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
