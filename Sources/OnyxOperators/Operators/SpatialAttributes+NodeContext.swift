import OnyxIR
import OnyxKernels

extension SpatialAttributes {
    /// Reads and checks the node's kernel_shape, strides, dilations, pads, auto_pad and ceil_mode.
    package init(_ context: NodeContext) throws {
        self.init(
            kernelShape: try context.ints("kernel_shape"), strides: try context.ints("strides"),
            dilations: try context.ints("dilations"), pads: try context.ints("pads"),
            autoPad: try context.string("auto_pad", default: "NOTSET"),
            ceilMode: try context.int("ceil_mode", default: 0) != 0)
        guard ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"].contains(autoPad) else {
            throw context.attributeError("auto_pad '\(autoPad)' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        }
    }
}
