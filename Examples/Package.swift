// swift-tools-version:6.2
// Examples of Onyx used as a dependency. Build from the repository root with
//     swift build --package-path Examples
// and run with `swift run --package-path Examples screen-requests` (or `screen-text`, `custom-handler-server`).
import PackageDescription

let package = Package(
    name: "OnyxExamples",
    platforms: [.macOS(.v15)],
    dependencies: [
        // In your own package: .package(url: "https://github.com/<owner>/onyx.git", branch: "main")
        .package(name: "Onyx", path: ".."),
        // Only to run the server (`runService`); OnyxServe builds on it.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    ],
    targets: [
        .executableTarget(
            name: "screen-requests",
            dependencies: [.product(name: "Onyx", package: "Onyx")]
        ),
        .executableTarget(
            name: "screen-text",
            dependencies: [.product(name: "Onyx", package: "Onyx")]
        ),
        .executableTarget(
            name: "custom-handler-server",
            dependencies: [
                .product(name: "Onyx", package: "Onyx"),
                .product(name: "OnyxServe", package: "Onyx"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
    ]
)
