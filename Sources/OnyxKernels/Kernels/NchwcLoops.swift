internal import CKernels

/// One image's window in the NCHWc layout: extents, kernel, strides, dilations and pads of a
/// convolution or pool, the channels read and written, and whether the input is plain NCHW (a
/// chain's first convolution) rather than blocked.
package struct NchwcGeometry: Sendable {
    package var inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int
    package var kernelHeight: Int, kernelWidth: Int
    package var strideY: Int, strideX: Int, dilationY: Int, dilationX: Int
    package var padTop: Int, padLeft: Int
    package var inChannels: Int, outChannels: Int
    package var plainInput: Bool

    package init(
        inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int, kernelHeight: Int, kernelWidth: Int,
        strideY: Int, strideX: Int, dilationY: Int, dilationX: Int, padTop: Int, padLeft: Int,
        inChannels: Int, outChannels: Int, plainInput: Bool = false
    ) {
        (self.inHeight, self.inWidth, self.outHeight, self.outWidth) = (inHeight, inWidth, outHeight, outWidth)
        (self.kernelHeight, self.kernelWidth) = (kernelHeight, kernelWidth)
        (self.strideY, self.strideX, self.dilationY, self.dilationX) = (strideY, strideX, dilationY, dilationX)
        (self.padTop, self.padLeft) = (padTop, padLeft)
        (self.inChannels, self.outChannels, self.plainInput) = (inChannels, outChannels, plainInput)
    }

    /// The C kernels' form, input addressing filled in.
    var c: onyx_nchwc_geometry {
        var g = onyx_nchwc_geometry(
            in_h: inHeight, in_w: inWidth, out_h: outHeight, out_w: outWidth, kernel_h: kernelHeight,
            kernel_w: kernelWidth, stride_y: strideY, stride_x: strideX, dilation_y: dilationY, dilation_x: dilationX,
            pad_top: padTop, pad_left: padLeft, in_channels: inChannels, in_block_stride: 0, in_lane_stride: 0,
            in_row_stride: 0, in_pixel_stride: 0, out_channels: outChannels)
        onyx_nchwc_set_input_layout(&g, plainInput ? 1 : 0)
        return g
    }
}

/// What an NCHWc pool computes over each window.
package enum NchwcPoolKind: Sendable {
    /// The largest tap inside the image.
    case max
    /// The mean of the taps inside the image.
    case average
    /// The sum of the taps inside the image over the whole window's area (count_include_pad).
    case averageFull
}

/// Which register tiles an NCHWc convolution runs: the set for this CPU, or a named one (the two
/// differ for AVX-512 only, see `onyx_nchwc_tiles`); tests force each.
package enum NchwcTileSet: Sendable, CaseIterable {
    /// The set this CPU runs best.
    case cpu
    /// For cores with full-width 512-bit FMA units.
    case full
    /// For cores that split a 512-bit FMA into two 256-bit halves (AMD Zen 4).
    case split

    var cValue: onyx_nchwc_tiles {
        switch self {
        case .cpu: ONYX_NCHWC_TILES_CPU
        case .full: ONYX_NCHWC_TILES_FULL
        case .split: ONYX_NCHWC_TILES_SPLIT
        }
    }
}

/// The C kernels of the blocked channel layout NCHWc (`[⌈C/16⌉][H][W][16]` per image): filter
/// packing, reorders, convolution, depthwise convolution and pooling, over ranges of work items
/// that the caller spreads over threads.
package enum NchwcLoops {
    /// Channels per block (floats per pixel of a block).
    package static let block = Int(ONYX_NCHWC_BLOCK)
    /// Output blocks per filter group, the convolution's work item along the output channels.
    package static let filterGroupBlocks = Int(ONYX_NCHWC_FILTER_GROUP)

    /// Filter groups (work items along the output channels) of `outChannels` filters.
    package static func filterGroups(_ outChannels: Int) -> Int { onyx_nchwc_filter_groups(outChannels) }

    /// Packs filters `[outChannels][inChannels][kernelHeight][kernelWidth]` for ``convolve``.
    package static func packFilter(
        _ weights: UnsafePointer<Float>, outChannels: Int, inChannels: Int, kernelHeight: Int, kernelWidth: Int,
        into packed: UnsafeMutablePointer<Float>
    ) {
        onyx_nchwc_pack_filter(weights, outChannels, inChannels, kernelHeight, kernelWidth, packed)
    }

    /// Packs depthwise filters `[channels][1][kernelHeight][kernelWidth]` for ``depthwise``.
    package static func packDepthwiseFilter(
        _ weights: UnsafePointer<Float>, channels: Int, kernelHeight: Int, kernelWidth: Int,
        into packed: UnsafeMutablePointer<Float>
    ) {
        onyx_nchwc_pack_depthwise_filter(weights, channels, kernelHeight, kernelWidth, packed)
    }

    /// One image from NCHW `[channels][area]` to NCHWc (zero lanes past `channels`), for `blocks`.
    package static func reorderIn(
        _ source: UnsafePointer<Float>, channels: Int, area: Int, into destination: UnsafeMutablePointer<Float>,
        blocks: Range<Int>, isa: KernelISA
    ) {
        onyx_nchwc_reorder_in(isa.cValue, source, channels, area, destination, blocks.lowerBound, blocks.upperBound)
    }

    /// One image from NCHWc back to NCHW, for `blocks`.
    package static func reorderOut(
        _ source: UnsafePointer<Float>, channels: Int, area: Int, into destination: UnsafeMutablePointer<Float>,
        blocks: Range<Int>, isa: KernelISA
    ) {
        onyx_nchwc_reorder_out(isa.cValue, source, channels, area, destination, blocks.lowerBound, blocks.upperBound)
    }

    /// One image of a group-1 convolution into NCHWc `output`, filter groups `groups` and output
    /// rows `rows`: bias + filter ⋆ input (added to what `output` holds when `accumulate`), then the
    /// activation, with register tiles `tiles`.
    package static func convolve(
        _ geometry: NchwcGeometry, _ input: UnsafePointer<Float>, filter: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, into output: UnsafeMutablePointer<Float>, groups: Range<Int>, rows: Range<Int>,
        accumulate: Bool, activation: FusedActivation?, isa: KernelISA, tiles: NchwcTileSet = .cpu
    ) {
        var g = geometry.c
        FusedActivation.withCValue(activation) {
            onyx_nchwc_conv_tiles(
                isa.cValue, tiles.cValue, &g, input, filter, bias, output, groups.lowerBound, groups.upperBound, rows.lowerBound,
                rows.upperBound, accumulate ? 1 : 0, $0)
        }
    }

    /// One image of a depthwise convolution (NCHWc in and out), channel blocks `blocks` and output
    /// rows `rows`, then the activation.
    package static func depthwise(
        _ geometry: NchwcGeometry, _ input: UnsafePointer<Float>, filter: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, into output: UnsafeMutablePointer<Float>, blocks: Range<Int>, rows: Range<Int>,
        activation: FusedActivation?, isa: KernelISA
    ) {
        var g = geometry.c
        FusedActivation.withCValue(activation) {
            onyx_nchwc_depthwise(
                isa.cValue, &g, input, filter, bias, output, blocks.lowerBound, blocks.upperBound, rows.lowerBound,
                rows.upperBound, $0)
        }
    }

    /// One image of a pool over NCHWc input and output, channel blocks `blocks`.
    package static func pool(
        _ kind: NchwcPoolKind, _ geometry: NchwcGeometry, _ input: UnsafePointer<Float>,
        into output: UnsafeMutablePointer<Float>, blocks: Range<Int>, isa: KernelISA
    ) {
        var g = geometry.c
        let cKind = switch kind {
        case .max: ONYX_NCHWC_POOL_MAX
        case .average: ONYX_NCHWC_POOL_AVERAGE
        case .averageFull: ONYX_NCHWC_POOL_AVERAGE_FULL
        }
        onyx_nchwc_pool(isa.cValue, cKind, &g, input, output, blocks.lowerBound, blocks.upperBound)
    }
}
