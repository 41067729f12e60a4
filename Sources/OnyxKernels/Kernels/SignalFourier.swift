#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Discrete Fourier transforms of one length over complex sequences held as separate real and
/// imaginary Double arrays: radix-2 FFT when the length is a power of two, a direct O(n²) sum
/// otherwise.
@usableFromInline package struct SignalFourierTransform {
    package let count: Int
    /// `cos(2πm/n)` for `m` in `0..<n`, followed by `sin(2πm/n)`.
    package let table: UnsafePointer<Double>

    /// Doubles of twiddle table a transform of `count` points needs.
    package static func tableCount(_ count: Int) -> Int { 2 * count }

    /// Doubles of scratch one line needs: the sequence and the direct sum's output.
    package static func lineCount(_ count: Int) -> Int { 4 * count }

    /// Fills the twiddle table for `count` points.
    package static func fillTable(_ table: UnsafeMutablePointer<Double>, count: Int) {
        for m in 0..<count {
            let angle = 2 * Double.pi * Double(m) / Double(count)
            table[m] = cos(angle)
            table[count + m] = sin(angle)
        }
    }

    package var isPowerOfTwo: Bool { count > 0 && count & (count - 1) == 0 }

    /// Transforms `re`/`im` in place: `X[k] = Σ x[t]·e^(∓2πikt/n)`, the sign negative unless
    /// `inverse` (no 1/n scaling). `scratchRe`/`scratchIm` hold `count` values each.
    package func transform(
        _ re: UnsafeMutablePointer<Double>, _ im: UnsafeMutablePointer<Double>, inverse: Bool,
        scratchRe: UnsafeMutablePointer<Double>, scratchIm: UnsafeMutablePointer<Double>
    ) {
        let n = count
        guard n > 1 else { return }
        let cosines = table, sines = table + n
        let sign: Double = inverse ? 1 : -1
        if isPowerOfTwo {
            var j = 0
            for i in 1..<n {
                var bit = n >> 1
                while j & bit != 0 {
                    j ^= bit
                    bit >>= 1
                }
                j |= bit
                if i < j {
                    (re[i], re[j]) = (re[j], re[i])
                    (im[i], im[j]) = (im[j], im[i])
                }
            }
            var length = 2
            while length <= n {
                let half = length / 2, step = n / length
                for start in stride(from: 0, to: n, by: length) {
                    for k in 0..<half {
                        let wr = cosines[k * step], wi = sign * sines[k * step]
                        let a = start + k, b = a + half
                        let tr = re[b] * wr - im[b] * wi
                        let ti = re[b] * wi + im[b] * wr
                        re[b] = re[a] - tr
                        im[b] = im[a] - ti
                        re[a] += tr
                        im[a] += ti
                    }
                }
                length *= 2
            }
            return
        }
        for k in 0..<n {
            var sumRe = 0.0, sumIm = 0.0, m = 0
            for t in 0..<n {
                let wr = cosines[m], wi = sign * sines[m]
                sumRe += re[t] * wr - im[t] * wi
                sumIm += re[t] * wi + im[t] * wr
                m += k
                if m >= n { m -= n }
            }
            scratchRe[k] = sumRe
            scratchIm[k] = sumIm
        }
        re.update(from: scratchRe, count: n)
        im.update(from: scratchIm, count: n)
    }

    package init(count: Int, table: UnsafePointer<Double>) {
        self.count = count
        self.table = table
    }
}

/// Window functions (Hann, Hamming, Blackman) and the mel filter bank, in Double.
@usableFromInline package enum SignalWindows {
    @usableFromInline package enum Kind: String, Sendable {
        case hann = "HannWindow", hamming = "HammingWindow", blackman = "BlackmanWindow"
    }

    /// Fills `size` window values; a periodic window is the first `size` points of a symmetric
    /// window of `size + 1`.
    package static func fill(_ kind: Kind, periodic: Bool, size: Int, into out: UnsafeMutablePointer<Double>) {
        let span = Double(periodic ? size : size - 1)
        guard span > 0 else {
            // A symmetric window of one point is its peak.
            for i in 0..<size { out[i] = 1 }
            return
        }
        // The operations in the order of the ONNX reference, so that integer outputs, which
        // truncate, agree at the peak (Blackman's centre is 1, not 0.99999…).
        let alpha = 25.0 / 46.0
        for i in 0..<size {
            let n = Double(i)
            switch kind {
            case .hann:
                let s = sin(n * .pi / span)
                out[i] = s * s
            case .hamming:
                out[i] = alpha - cos(n * .pi * 2 / span) * (1 - alpha)
            case .blackman:
                out[i] = cos(n * (.pi * 2) / span) * -0.5 + cos(n * (.pi * 4) / span) * 0.08 + 0.42
            }
        }
    }

    /// The `[dftLength/2 + 1, melBins]` matrix of triangular mel filters, peak 1, as the ONNX
    /// reference builds it: `melBins + 2` band edges evenly spaced in mel between the edges,
    /// mapped to DFT bins by `floor((dftLength + 1) · f / sampleRate)`.
    ///
    /// - Parameters:
    ///   - lowMel: `2595·log10(1 + lower/700)` computed in the edges' precision (as is `melStep`).
    package static func melWeights(
        melBins: Int, dftLength: Int, sampleRate: Int, lowMel: Double, melStep: Double,
        into out: UnsafeMutablePointer<Double>
    ) {
        let spectrogramBins = dftLength / 2 + 1
        out.update(repeating: 0, count: spectrogramBins * melBins)
        let edges = (0..<(melBins + 2)).map { i -> Int in
            let mel = Double(i) * melStep + lowMel
            let hertz = 700 * expm1(mel / 2595 * log(10.0))
            let bin = (Double(dftLength + 1) * hertz / Double(sampleRate)).rounded(.down)
            return bin.isFinite ? Int(max(min(bin, 1e15), -1e15)) : -1
        }
        func set(_ row: Int, _ column: Int, _ value: Double) {
            if row >= 0 && row < spectrogramBins { out[row * melBins + column] = value }
        }
        for i in 0..<melBins {
            let left = edges[i], center = edges[i + 1], right = edges[i + 2]
            if center == left {
                set(center, i, 1)
            } else if center > left {
                let first = max(left, 0), last = min(center, spectrogramBins - 1)
                if first <= last {
                    for j in first...last { set(j, i, Double(j - left) / Double(center - left)) }
                }
            }
            if right > center {
                let first = max(center, 0), end = min(right, spectrogramBins)
                if first < end {
                    for j in first..<end { set(j, i, Double(right - j) / Double(right - center)) }
                }
            }
        }
    }
}
