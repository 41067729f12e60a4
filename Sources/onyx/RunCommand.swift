import ArgumentParser
import Foundation
import Onyx

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model once on input tensors read from files.",
        discussion: """
            Inputs are ONNX TensorProto (.pb), NumPy (.npy) or JSON ({"shape": [...], "data": [...]}) \
            files. `--input FILE` binds to the graph's inputs in order (a .pb file's own tensor name \
            is used if it names an input); `--input NAME=FILE` binds by name. A sequence, map or \
            optional input is read from the .pb of its proto (SequenceProto, MapProto, OptionalProto), \
            and such outputs are printed as JSON lists and objects.
            """)

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .customLong("input"), help: "An input tensor file, as FILE or NAME=FILE.")
    var inputs: [String] = []

    @Option(name: .customLong("output-dir"), help: "Write each output K as output_K.pb (an ONNX TensorProto, or SequenceProto, MapProto, OptionalProto) here.")
    var outputDirectory: String?

    @Flag(help: "Print the full output tensors as JSON.")
    var json = false

    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
        try reportingErrors {
            let session = try InferenceSession(contentsOf: model, options: try modelOptions.sessionOptions())
            let feeds = try Self.bind(inputs, to: session)
            let outputs = try session.run(values: feeds)
            if let outputDirectory {
                try writeOutputs(outputs, session: session, to: outputDirectory)
            }
            if json {
                try printJSON(outputs, session: session)
            } else if outputDirectory == nil {
                try printSummary(outputs, session: session)
            }
        }
    }

    static func bind(_ inputs: [String], to session: InferenceSession) throws -> [String: OnnxValue] {
        let names = session.inputs.map(\.name)
        var feeds: [String: OnnxValue] = [:]
        var position = 0
        /// A sequence, map or optional input: its proto, read by the declared type.
        func container(_ name: String) -> ValueType? {
            guard let type = session.inputs.first(where: { $0.name == name })?.valueType, !type.isTensor else { return nil }
            return type
        }
        for argument in inputs {
            if let equals = argument.firstIndex(of: "="), names.contains(String(argument[..<equals])) {
                let name = String(argument[..<equals])
                let path = String(argument[argument.index(after: equals)...])
                feeds[name] = try container(name).map { try TensorFiles.readValue(path, as: $0) }
                    ?? .tensor(try TensorFiles.read(path).tensor)
                continue
            }
            while position < names.count, feeds[names[position]] != nil { position += 1 }
            if position < names.count, let type = container(names[position]) {
                feeds[names[position]] = try TensorFiles.readValue(argument, as: type)
                continue
            }
            let (fileName, tensor) = try TensorFiles.read(argument)
            if let fileName, names.contains(fileName), feeds[fileName] == nil {
                feeds[fileName] = .tensor(tensor)
                continue
            }
            guard position < names.count else {
                throw CommandLineInputError("more input files than the model's \(names.count) inputs (\(names.joined(separator: ", ")))")
            }
            feeds[names[position]] = .tensor(tensor)
        }
        return feeds
    }

    private func writeOutputs(_ outputs: [String: OnnxValue], session: InferenceSession, to directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw CommandLineInputError("cannot create output directory '\(directory)'")
        }
        for (k, value) in session.outputs.enumerated() {
            guard let output = outputs[value.name] else { continue }
            let path = (directory as NSString).appendingPathComponent("output_\(k).pb")
            guard FileManager.default.createFile(atPath: path, contents: Data(output.onnxProtoBytes(name: value.name))) else {
                throw CommandLineInputError("cannot write '\(path)'")
            }
        }
    }

    private func printSummary(_ outputs: [String: OnnxValue], session: InferenceSession) throws {
        for value in session.outputs {
            guard let output = outputs[value.name] else { continue }
            guard case .tensor(let tensor) = output else {
                let json = try JSONSerialization.data(withJSONObject: try TensorFiles.jsonObject(output), options: [.sortedKeys, .fragmentsAllowed])
                let text = String(decoding: json, as: UTF8.self)
                print("\(value.name): \(output.type) \(text.count > 300 ? text.prefix(300) + "…" : text)")
                continue
            }
            let leading = try TensorFiles.jsonValues(tensor, limit: 8).map { "\($0)" }.joined(separator: ", ")
            let more = tensor.elementCount > 8 ? ", …" : ""
            print("\(value.name): \(tensor.dataType) \(tensor.shape) [\(leading)\(more)]")
        }
    }

    private func printJSON(_ outputs: [String: OnnxValue], session: InferenceSession) throws {
        var object: [String: Any] = [:]
        for value in session.outputs {
            guard let output = outputs[value.name] else { continue }
            guard case .tensor(let tensor) = output else {
                object[value.name] = ["type": output.type.description, "data": try TensorFiles.jsonObject(output)] as [String: Any]
                continue
            }
            object[value.name] = [
                "datatype": tensor.dataType.onnxName,
                "shape": tensor.shape,
                "data": try TensorFiles.jsonValues(tensor),
            ] as [String: Any]
        }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
