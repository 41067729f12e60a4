internal import CKernels
import OnyxCore

/// The micro-kernel instruction set a session uses.
///
/// Chosen once per process from CPU features; `ONYX_ISA` (`avx512`, `avx2`, `portable`) or
/// ``SessionOptions/isa`` forces a variant, which lets tests exercise every path on one machine.
public enum KernelISA: String, Sendable, CaseIterable, Comparable {
    /// Portable C, for any CPU.
    case portable
    /// AVX2 with FMA.
    case avx2
    /// AVX-512.
    case avx512

    /// The best variant this CPU supports.
    public static let best: KernelISA = {
        switch onyx_cpu_best_isa() {
        case ONYX_ISA_AVX512: .avx512
        case ONYX_ISA_AVX2: .avx2
        default: .portable
        }
    }()

    /// The variant to use when the caller does not choose: `ONYX_ISA` if set and supported, else ``best``.
    public static let preferred: KernelISA = {
        if let forced = environmentValue("ONYX_ISA").flatMap(KernelISA.init(rawValue:)), forced <= best {
            return forced
        }
        return best
    }()

    /// The variants this CPU can run, portable first.
    public static var supported: [KernelISA] { allCases.filter { $0 <= best } }

    var cValue: onyx_isa {
        switch self {
        case .portable: ONYX_ISA_PORTABLE
        case .avx2: ONYX_ISA_AVX2
        case .avx512: ONYX_ISA_AVX512
        }
    }

    private var order: Int {
        switch self {
        case .portable: 0
        case .avx2: 1
        case .avx512: 2
        }
    }

    public static func < (lhs: KernelISA, rhs: KernelISA) -> Bool { lhs.order < rhs.order }
}
