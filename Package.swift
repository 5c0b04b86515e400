// swift-tools-version:6.0
import PackageDescription

/// Exclusivity is enforced in debug builds (every test run); release builds of the hot-path
/// modules skip the runtime checks, which cost more than hiredis itself in profiles.
let releaseSpeed: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

/// The listener links the Swift runtime statically: only the parts it uses are mapped, and
/// nothing of it is relocated at start-up (peak RSS on the 1M-event flood: about 3 MiB less
/// than with the shared runtime libraries).
let listenerLink: [LinkerSetting] = [.unsafeFlags(["-static-stdlib"], .when(platforms: [.linux]))]

let package = Package(
    name: "dedup",
    products: [
        .library(name: "Reactor", targets: ["Reactor"]),
        .executable(name: "producer", targets: ["Producer"]),
        .executable(name: "listener", targets: ["Listener"]),
        .executable(name: "Benchmarks", targets: ["Benchmarks"]),
        .executable(name: "Chaos", targets: ["Chaos"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .target(
            name: "CEpoll",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CPostgres", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "EventLog",
            dependencies: ["CZlib", .product(name: "Logging", package: "swift-log")],
            swiftSettings: releaseSpeed
        ),
        .target(
            name: "Reactor",
            dependencies: ["CEpoll", "CHiredis", "CPostgres"],
            swiftSettings: releaseSpeed
        ),
        .target(
            name: "Dedup",
            dependencies: ["Reactor", "ServiceKit", .product(name: "Logging", package: "swift-log")],
            swiftSettings: releaseSpeed
        ),
        .target(
            name: "ServiceKit",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "Producer",
            dependencies: [
                "Reactor", "ServiceKit", "EventLog",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: releaseSpeed
        ),
        .executableTarget(
            name: "Listener",
            dependencies: [
                "Dedup", "Reactor", "ServiceKit",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: releaseSpeed,
            linkerSettings: listenerLink
        ),
        .target(name: "CAllocCounter"),
        .executableTarget(
            name: "Benchmarks",
            dependencies: ["Reactor", "Dedup", "EventLog", "ServiceKit", "CAllocCounter", "TestSupport", .product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "Benchmarks"
        ),
        .executableTarget(
            name: "Chaos",
            dependencies: ["Reactor", "TestSupport"],
            path: "Chaos"
        ),
        .target(
            name: "TestSupport",
            dependencies: ["Reactor"],
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "SystemTests",
            dependencies: ["Reactor", "TestSupport"],
            path: "Tests/SystemTests"
        ),
        .testTarget(
            name: "ProducerTests",
            dependencies: ["Producer", "Reactor", "ServiceKit", "TestSupport"],
            path: "Tests/ProducerTests"
        ),
        .testTarget(
            name: "ListenerTests",
            dependencies: ["Dedup", "Reactor"],
            path: "Tests/ListenerTests"
        ),
        .testTarget(
            name: "EventLogTests",
            dependencies: ["EventLog", .product(name: "Logging", package: "swift-log")],
            path: "Tests/EventLogTests"
        ),
        .testTarget(
            name: "ChaosTests",
            dependencies: ["Chaos", "TestSupport"],
            path: "Tests/ChaosTests"
        ),
        .testTarget(
            name: "ReactorTests",
            dependencies: ["Reactor", "Dedup", "TestSupport"],
            path: "Tests/ReactorTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
