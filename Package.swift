// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "Onyx",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Onyx", targets: ["Onyx"]),
        .library(name: "OnyxServe", targets: ["OnyxServe"]),
        .library(name: "OnyxGRPC", targets: ["OnyxGRPC"]),
        .executable(name: "onyx", targets: ["onyx"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
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
        // The runtime, one target per layer; each depends only on the layers below it, so the
        // compiler rejects a back edge. `Onyx` re-exports the public API of the layers below.
        .target(name: "OnyxCore"),
        .target(name: "OnyxIR", dependencies: ["OnyxCore", "COnnxProto"]),
        .target(name: "OnyxKernels", dependencies: ["OnyxCore", "CKernels"]),
        .target(name: "OnyxOperators", dependencies: ["OnyxCore", "OnyxIR", "OnyxKernels"]),
        .target(
            name: "Onyx",
            dependencies: ["OnyxCore", "OnyxIR", "OnyxKernels", "OnyxOperators"]
        ),
        .target(
            name: "OnyxConformance",
            dependencies: ["Onyx"]
        ),
        .target(
            name: "OnyxServe",
            dependencies: [
                "Onyx",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The Open Inference Protocol over gRPC, beside OnyxServe's HTTP front: its own target so
        // HTTP-only users of OnyxServe do not build grpc-swift. The messages and service stubs in
        // Generated/ are protoc output, committed (tools/generate-grpc.sh).
        .target(
            name: "OnyxGRPC",
            dependencies: [
                "Onyx",
                "OnyxServe",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["Proto/grpc_predict_v2.proto"]
        ),
        .executableTarget(
            name: "onyx",
            dependencies: [
                "Onyx",
                "OnyxConformance",
                "OnyxServe",
                "OnyxGRPC",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Counts malloc calls process-wide for AllocationTests (a test-only helper).
        .target(name: "CAllocationCounter", path: "Tests/CAllocationCounter"),
        .testTarget(
            name: "OnyxTests",
            dependencies: [
                "Onyx", "OnyxCore", "OnyxIR", "OnyxKernels", "OnyxOperators", "OnyxConformance", "CKernels",
                "CAllocationCounter",
            ]
        ),
        .testTarget(
            name: "OnyxServeTests",
            dependencies: [
                "OnyxServe",
                "OnyxGRPC",
                "Onyx",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
            ]
        ),
    ]
)
