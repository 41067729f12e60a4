// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "Onyx",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Onyx", targets: ["Onyx"]),
        .executable(name: "onyx", targets: ["onyx"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        .target(
            name: "COnnxProto",
            dependencies: ["CProtobufC"],
            exclude: ["onnx.proto"],
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),
        .target(name: "CKernels"),
        .target(
            name: "Onyx",
            dependencies: ["COnnxProto", "CKernels"]
        ),
        .executableTarget(
            name: "onyx",
            dependencies: [
                "Onyx",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "OnyxTests",
            dependencies: ["Onyx", "CKernels"]
        ),
    ]
)
