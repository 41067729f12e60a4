// `import Onyx` is the whole public API: tensors and errors (OnyxCore), the model IR and its
// decoder (OnyxIR), the kernel variants (OnyxKernels) and the operator catalog (OnyxOperators).
@_exported import OnyxCore
@_exported import OnyxIR
@_exported import enum OnyxKernels.KernelISA
@_exported import enum OnyxOperators.OperatorCatalog
