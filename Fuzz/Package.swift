// swift-tools-version:6.2
// Fuzz targets for Onyx's hostile-input surfaces. A separate package so that libFuzzer's
// `-sanitize=fuzzer` never reaches the library build: run through `tools/fuzz.sh TARGET SECONDS`,
// which passes `-Xswiftc -sanitize=fuzzer` (coverage for every Swift module, libFuzzer's main).
import PackageDescription

let package = Package(
    name: "OnyxFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Onyx", path: ".."),
    ],
    targets: [
        .target(name: "CFuzzDriver"),
        // model bytes → Model(bytes:) → InferenceSession → one run on zero inputs
        .executableTarget(
            name: "FuzzModel",
            dependencies: ["CFuzzDriver", .product(name: "Onyx", package: "Onyx")]
        ),
        // JSON `/infer` body → InferenceProtocol.decodeRequest (JSONParser + TensorJSON)
        .executableTarget(
            name: "FuzzTensorJSON",
            dependencies: ["CFuzzDriver", .product(name: "OnyxServe", package: "Onyx"), .product(name: "Onyx", package: "Onyx")]
        ),
        // Inference-Header-Content-Length + binary tail → InferenceProtocol.decodeRequest
        .executableTarget(
            name: "FuzzBinaryRequest",
            dependencies: ["CFuzzDriver", .product(name: "OnyxServe", package: "Onyx"), .product(name: "Onyx", package: "Onyx")]
        ),
    ]
)
