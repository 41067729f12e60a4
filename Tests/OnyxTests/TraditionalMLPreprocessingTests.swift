import Testing
@testable import Onyx
@testable import OnyxCore
@testable import OnyxIR
@testable import OnyxKernels
@testable import OnyxOperators

/// Normalizer, Scaler, Imputer, OneHotEncoder, FeatureVectorizer, LabelEncoder and CategoryMapper (ai.onnx.ml).
@Suite struct TraditionalMLPreprocessingTests {
    static func floats(_ op: String, opset: Int = 1, _ inputs: [Tensor], _ attributes: [String: Attribute]) throws -> [Float] {
        try TraditionalMLTests.run(op, opset: opset, inputs, attributes).scalars(as: Float.self)
    }

    static func error(_ op: String, opset: Int = 1, _ inputs: [Tensor], _ attributes: [String: Attribute]) -> OnyxError? {
        #expect(throws: OnyxError.self) { try TraditionalMLTests.run(op, opset: opset, inputs, attributes) }
    }

    // MARK: - Normalizer

    @Test func normalizer() throws {
        let x = try Tensor(shape: [3, 2], scalars: [3, -4, 0, 0, -2, -1] as [Float])
        // A zero divisor leaves the row as it is; MAX divides by the largest element, even a negative one.
        #expect(TraditionalMLTests.close(try Self.floats("Normalizer", [x], ["norm": .string("MAX")]), [1, -4.0 / 3, 0, 0, 2, 1]))
        #expect(TraditionalMLTests.close(try Self.floats("Normalizer", [x], ["norm": .string("L1")]), [3.0 / 7, -4.0 / 7, 0, 0, -2.0 / 3, -1.0 / 3]))
        #expect(TraditionalMLTests.close(try Self.floats("Normalizer", [x], ["norm": .string("L2")]),
                                         [0.6, -0.8, 0, 0, -2 / Float(5).squareRoot(), -1 / Float(5).squareRoot()]))
        let ints = try TraditionalMLTests.run("Normalizer", [try Tensor(shape: [2], scalars: [3, 4] as [Int32])], ["norm": .string("L2")])
        #expect(ints.dataType == .float)
        #expect(ints.shape == [2])
        #expect(try ints.scalars(as: Float.self) == [0.6, 0.8])
        #expect(Self.error("Normalizer", [x], ["norm": .string("L3")])?.message == "Normalizer node 'n': norm 'L3' is not MAX, L1 or L2")
        #expect(Self.error("Normalizer", [try Tensor(shape: [1, 1, 2], scalars: [1, 2] as [Float])], [:])?.code == .shapeMismatch)
    }

    // MARK: - Scaler

    @Test func scaler() throws {
        let x = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Int64])
        #expect(try Self.floats("Scaler", [x], ["offset": .floats([1, 2]), "scale": .floats([2, 0.5])]) == [0, 0, 4, 1])
        #expect(try Self.floats("Scaler", [x], ["offset": .floats([1]), "scale": .floats([3])]) == [0, 3, 6, 9])
        #expect(try Self.floats("Scaler", [try Tensor(shape: [2], scalars: [1.5, 2.5] as [Double])], ["scale": .floats([2])]) == [3, 5])
        #expect(Self.error("Scaler", [x], ["offset": .floats([1, 2, 3])])?.message == "Scaler: offset has 3 values; X has 2 features (or give 1)")
    }

    // MARK: - Imputer

    @Test func imputer() throws {
        let x = try Tensor(shape: [2, 3], scalars: [.nan, 1, 2, 3, .nan, .nan] as [Float])
        let perFeature = try TraditionalMLTests.run("Imputer", [x], ["imputed_value_floats": .floats([7, 8, 9]), "replaced_value_float": .float(.nan)])
        #expect(try perFeature.scalars(as: Float.self) == [7, 1, 2, 3, 8, 9])
        let double = try TraditionalMLTests.run("Imputer", [try Tensor(shape: [3], scalars: [0, 1, 0] as [Double])], ["imputed_value_floats": .floats([5])])
        #expect(try double.scalars(as: Double.self) == [5, 1, 5])
        let ints = try TraditionalMLTests.run("Imputer", [try Tensor(shape: [2, 2], scalars: [-1, 4, 5, -1] as [Int32])],
                                              ["imputed_value_int64s": .ints([10, 20]), "replaced_value_int64": .int(-1)])
        #expect(ints.dataType == .int32)
        #expect(try ints.scalars(as: Int32.self) == [10, 4, 5, 20])
        #expect(Self.error("Imputer", [x], ["imputed_value_floats": .floats([1]), "imputed_value_int64s": .ints([1])])?.message
            == "Imputer node 'n': needs exactly one of imputed_value_floats and imputed_value_int64s")
        #expect(Self.error("Imputer", [x], ["imputed_value_int64s": .ints([1])])?.message
            == "Imputer: imputed_value_int64s needs int64 or int32 X, found float")
        #expect(Self.error("Imputer", [x], ["imputed_value_floats": .floats([1, 2])])?.message
            == "Imputer: 2 imputed values; X has 3 features (or give 1)")
    }

    // MARK: - OneHotEncoder

    @Test func oneHotEncoder() throws {
        let categories: [String: Attribute] = ["cats_int64s": .ints([5, 1, 9])]
        let y = try TraditionalMLTests.run("OneHotEncoder", [try Tensor(shape: [2, 2], scalars: [1, 9, 5, 4] as [Int64])], categories)
        #expect(y.shape == [2, 2, 3])
        // 4 is no category: all zeros.
        #expect(try y.scalars(as: Float.self) == [0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0])
        // Floats are truncated to integers first.
        #expect(try Self.floats("OneHotEncoder", [try Tensor(shape: [2], scalars: [9.7, -0.5] as [Float])], ["cats_int64s": .ints([0, 9])]) == [0, 1, 1, 0])
        let unknown = Self.error("OneHotEncoder", [try Tensor(shape: [1], scalars: [4] as [Int32])], categories.merging(["zeros": .int(0)]) { $1 })
        #expect(unknown?.code == .invalidInput)
        #expect(unknown?.message == "OneHotEncoder node 'n': 4 is not in cats_int64s and zeros is 0")
        let words = try TraditionalMLTests.run("OneHotEncoder", [try Tensor(strings: ["b", "zz", "a"], shape: [3])], ["cats_strings": .strings(["a", "b"])])
        #expect(words.shape == [3, 2])
        #expect(try words.scalars(as: Float.self) == [0, 1, 0, 0, 1, 0])
        let strings = Self.error("OneHotEncoder", [try Tensor(shape: [1], scalars: [4] as [Int64])], ["cats_strings": .strings(["a"])])
        #expect(strings?.message == "OneHotEncoder: X must be string with cats_strings")
    }

    // MARK: - FeatureVectorizer

    @Test func featureVectorizer() throws {
        // Input 0 gives 1 of its 2 columns, input 1 its 2 columns padded to 3.
        let a = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Int64])
        let b = try Tensor(shape: [2, 2], scalars: [0.5, 1.5, 2.5, 3.5] as [Double])
        let y = try TraditionalMLTests.run("FeatureVectorizer", [a, b], ["inputdimensions": .ints([1, 3])])
        #expect(y.shape == [2, 4])
        #expect(try y.scalars(as: Float.self) == [1, 0.5, 1.5, 0, 3, 2.5, 3.5, 0])
        #expect(Self.error("FeatureVectorizer", [a, try Tensor(shape: [3, 1], scalars: [1, 2, 3] as [Float])], ["inputdimensions": .ints([2, 1])])?.message
            == "FeatureVectorizer: input 1 has 3 rows, input 0 has 2")
        #expect(Self.error("FeatureVectorizer", [a], ["inputdimensions": .ints([2, 1])])?.message
            == "FeatureVectorizer node 'n': inputdimensions has 2 entries for 1 inputs")
    }

    // MARK: - LabelEncoder

    @Test func labelEncoderOpset2() throws {
        let ints = try Tensor(shape: [4], scalars: [3, 7, 3, 5] as [Int64])
        let toFloat = try TraditionalMLTests.run("LabelEncoder", opset: 2, [ints], [
            "keys_int64s": .ints([3, 5]), "values_floats": .floats([0.5, 1.5]), "default_float": .float(-1),
        ])
        #expect(toFloat.dataType == .float)
        #expect(try toFloat.scalars(as: Float.self) == [0.5, -1, 0.5, 1.5])
        // Repeated keys: the first wins; the default default is −1.
        let toInt = try TraditionalMLTests.run("LabelEncoder", opset: 2, [try Tensor(shape: [3], scalars: [0.5, 2, -0.0] as [Float])], [
            "keys_floats": .floats([0.5, 0.5, 0]), "values_int64s": .ints([10, 11, 12]),
        ])
        #expect(try toInt.scalars(as: Int64.self) == [10, -1, 12])
    }

    @Test func labelEncoderOpset4Tensors() throws {
        let x = try Tensor(shape: [2, 2], scalars: [1, .nan, 2, 4] as [Double])
        let y = try TraditionalMLTests.run("LabelEncoder", opset: 4, [x], [
            "keys_tensor": .tensor(try Tensor(shape: [3], scalars: [1, .nan, 2] as [Double])),
            "values_tensor": .tensor(try Tensor(shape: [3], scalars: [10, 20, 30] as [Int16])),
            "default_tensor": .tensor(try Tensor(shape: [1], scalars: [-7] as [Int16])),
        ])
        #expect(y.dataType == .int16)
        // From opset 4 a NaN key matches NaN.
        #expect(try y.scalars(as: Int16.self) == [10, 20, 30, -7])
    }

    @Test func labelEncoderErrors() throws {
        let x = try Tensor(shape: [1], scalars: [1] as [Int64])
        #expect(Self.error("LabelEncoder", opset: 2, [x], ["keys_int64s": .ints([1, 2]), "values_int64s": .ints([1])])?.message
            == "LabelEncoder node 'n': has 2 keys but 1 values")
        #expect(Self.error("LabelEncoder", opset: 2, [x], ["values_int64s": .ints([1])])?.message
            == "LabelEncoder node 'n': missing the keys (keys_int64s, keys_floats or keys_tensor)")
        let strings = Self.error("LabelEncoder", opset: 2, [x], ["keys_strings": .strings(["a"]), "values_int64s": .ints([1])])
        #expect(strings?.message == "LabelEncoder: X must be string like the keys, found int64")
        #expect(Self.error("LabelEncoder", opset: 2, [try Tensor(shape: [1], scalars: [1] as [Float])], ["keys_int64s": .ints([1]), "values_int64s": .ints([1])])?.message
            == "LabelEncoder: X must be int64 like the keys, found float")
        #expect(Self.error("LabelEncoder", opset: 4, [x], [
            "keys_int64s": .ints([1]), "values_tensor": .tensor(try Tensor(shape: [1], scalars: [1] as [Float])),
            "default_tensor": .tensor(try Tensor(shape: [1], scalars: [1] as [Double])),
        ])?.message == "LabelEncoder node 'n': default_tensor must be one float value, found double [1]")
    }

    @Test func labelEncoderOnStrings() throws {
        let words = try Tensor(strings: ["cat", "dog", "emu"], shape: [3])
        let codes = try TraditionalMLTests.run("LabelEncoder", opset: 2, [words],
                                               ["keys_strings": .strings(["dog", "cat"]), "values_int64s": .ints([1, 2]), "default_int64": .int(-9)])
        #expect(try codes.scalars(as: Int64.self) == [2, 1, -9])
        let names = try TraditionalMLTests.run("LabelEncoder", opset: 2, [try Tensor(shape: [2], scalars: [1, 5] as [Int64])],
                                               ["keys_int64s": .ints([1]), "values_strings": .strings(["one"])])
        #expect(try names.strings() == ["one", "_Unused"])
        // Opset 1: strings to positions in classes_strings, and integers back to strings.
        let classes: [String: Attribute] = ["classes_strings": .strings(["a", "b"])]
        #expect(try TraditionalMLTests.run("LabelEncoder", opset: 1, [try Tensor(strings: ["b", "q"], shape: [2])], classes).scalars(as: Int64.self) == [1, -1])
        #expect(try TraditionalMLTests.run("LabelEncoder", opset: 1, [try Tensor(shape: [2], scalars: [0, 7] as [Int64])], classes).strings()
                == ["a", "_Unused"])
    }

    @Test func categoryMapper() throws {
        let pairs: [String: Attribute] = ["cats_int64s": .ints([10, 20]), "cats_strings": .strings(["a", "b"])]
        #expect(try TraditionalMLTests.run("CategoryMapper", [try Tensor(strings: ["b", "z"], shape: [2])], pairs).scalars(as: Int64.self) == [20, -1])
        #expect(try TraditionalMLTests.run("CategoryMapper", [try Tensor(shape: [2], scalars: [10, 3] as [Int64])], pairs).strings() == ["a", "_Unused"])
        let uneven = Self.error("CategoryMapper", [try Tensor(shape: [1], scalars: [1] as [Int64])], ["cats_int64s": .ints([1]), "cats_strings": .strings(["a", "b"])])
        #expect(uneven?.message == "CategoryMapper node 'n': cats_strings has 2 entries but cats_int64s 1")
    }
}
