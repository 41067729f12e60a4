/*
 * Throughput of the NCHWc direct convolution (Sources/CKernels/nchwc_tiles.h) on the layers of
 * ResNet-18, MobileNetV2, SqueezeNet, MobileNetV3 and DenseNet-121, and of the depthwise convolution on
 * those of MobileNetV2 and EfficientNet-B0, one thread, warm caches, against the core's FMA peak, and a
 * check of the vector kernels against the portable loop. Not part of the product:
 *
 *   cc -O2 -I Sources/CKernels/include tools/bench_nchwc.c Sources/CKernels/[a-z]*.c -lm -lpthread -o /tmp/bench_nchwc
 *   (SwiftPM builds CKernels with clang at -O2: build with /opt/swift/usr/bin/clang to time what Onyx runs;
 *   gcc's code differs, see docs/performance.md, "NCHWc tiles under clang -O2")
 *   /tmp/bench_nchwc [peak GFLOP/s, e.g. from tools/peak_flops.c] [avx2|avx512: the CPU's best by default]
 *                    [full|split: AVX-512's register tiles (onyx_nchwc_tiles), the CPU's choice by default]
 *
 * Prints a markdown table: median time of repeated whole-layer calls (and the best, which a
 * machine shared with other work disturbs least), GFLOP/s at the median, % of peak, and
 * the largest difference from the portable kernel (with the bias, a Relu6 clamp, and a residual
 * accumulated over two row ranges).
 */
#include "onyx_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *random_floats(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    const char *name;
    size_t in_channels, out_channels, size, kernel, stride, pad;
    int plain_input; /* the chain's first convolution, reading NCHW */
    int depthwise;   /* one filter per channel (in_channels == out_channels) */
} layer;

static const layer layers[] = {
    {"resnet18 conv1 7x7/2 3→64 224²", 3, 64, 224, 7, 2, 3, 1},
    {"resnet18 3x3 64→64 56²", 64, 64, 56, 3, 1, 1, 0},
    {"resnet18 3x3/2 64→128 56²", 64, 128, 56, 3, 2, 1, 0},
    {"resnet18 3x3 128→128 28²", 128, 128, 28, 3, 1, 1, 0},
    {"resnet18 1x1/2 64→128 56²", 64, 128, 56, 1, 2, 0, 0},
    {"resnet18 3x3/2 128→256 28²", 128, 256, 28, 3, 2, 1, 0},
    {"resnet18 3x3 256→256 14²", 256, 256, 14, 3, 1, 1, 0},
    {"resnet18 3x3/2 256→512 14²", 256, 512, 14, 3, 2, 1, 0},
    {"resnet18 3x3 512→512 7²", 512, 512, 7, 3, 1, 1, 0},
    {"mobilenet_v2 conv1 3x3/2 3→32 224²", 3, 32, 224, 3, 2, 1, 1},
    {"mobilenet_v2 1x1 32→192 56²", 32, 192, 56, 1, 1, 0, 0},
    {"mobilenet_v2 1x1 192→32 28²", 192, 32, 28, 1, 1, 0, 0},
    {"mobilenet_v2 1x1 144→24 56²", 144, 24, 56, 1, 1, 0, 0},
    {"squeezenet conv1 3x3/2 3→64 224²", 3, 64, 224, 3, 2, 0, 1},
    {"squeezenet 3x3 16→64 55²", 16, 64, 55, 3, 1, 1, 0},
    {"mobilenet_v3 1x1 64→24 56²", 64, 24, 56, 1, 1, 0, 0},
    {"mobilenet_v3 1x1 120→40 28²", 120, 40, 28, 1, 1, 0, 0},
    {"mobilenet_v3 1x1 672→160 7²", 672, 160, 7, 1, 1, 0, 0},
    {"densenet121 1x1 256→128 56²", 256, 128, 56, 1, 1, 0, 0},
    {"densenet121 3x3 128→32 56²", 128, 32, 56, 3, 1, 1, 0},
    {"densenet121 3x3 128→32 14²", 128, 32, 14, 3, 1, 1, 0},
    {"mobilenet_v2 depthwise 3x3 144 56²", 144, 144, 56, 3, 1, 1, 0, 1},
    {"mobilenet_v2 depthwise 3x3/2 96 112²", 96, 96, 112, 3, 2, 1, 0, 1},
    {"mobilenet_v2 depthwise 3x3 960 7²", 960, 960, 7, 3, 1, 1, 0, 1},
    {"efficientnet_b0 depthwise 5x5 240 28²", 240, 240, 28, 5, 1, 2, 0, 1},
    {"efficientnet_b0 depthwise 5x5 672 14²", 672, 672, 14, 5, 1, 2, 0, 1},
    {"efficientnet_b0 depthwise 5x5 1152 7²", 1152, 1152, 7, 5, 1, 2, 0, 1},
};

int main(int argc, char **argv) {
    double peak = argc > 1 ? atof(argv[1]) : 0;
    onyx_isa isa = onyx_cpu_best_isa();
    if (argc > 2) isa = strcmp(argv[2], "avx512") == 0 ? ONYX_ISA_AVX512 : ONYX_ISA_AVX2;
    onyx_nchwc_tiles tiles = ONYX_NCHWC_TILES_CPU;
    if (argc > 3) tiles = strcmp(argv[3], "split") == 0 ? ONYX_NCHWC_TILES_SPLIT : ONYX_NCHWC_TILES_FULL;
    if (isa == ONYX_ISA_PORTABLE || isa > onyx_cpu_best_isa()) {
        printf("this CPU has no vector NCHWc kernels for that ISA\n");
        return 0;
    }
    printf("| layer | MFLOP | ms | best ms | GFLOP/s | %% of peak | max diff from portable |\n|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) {
        layer l = layers[i];
        onyx_nchwc_geometry g = {0};
        g.in_h = g.in_w = l.size;
        g.kernel_h = g.kernel_w = l.kernel;
        g.stride_y = g.stride_x = l.stride;
        g.dilation_y = g.dilation_x = 1;
        g.pad_top = g.pad_left = l.pad;
        g.out_h = g.out_w = (l.size + 2 * l.pad - l.kernel) / l.stride + 1;
        g.in_channels = l.in_channels;
        g.out_channels = l.out_channels;
        onyx_nchwc_set_input_layout(&g, l.plain_input);
        size_t in_blocks = (l.in_channels + 15) / 16, out_blocks = (l.out_channels + 15) / 16;
        size_t input_floats = l.plain_input ? l.in_channels * l.size * l.size : in_blocks * 16 * l.size * l.size;
        float *input = random_floats(input_floats);
        if (!l.plain_input) /* lanes past the channels are zero in the layout */
            for (size_t p = 0; p < input_floats; p++)
                if ((p / (16 * l.size * l.size)) * 16 + p % 16 >= l.in_channels) input[p] = 0;
        size_t area = l.kernel * l.kernel;
        float *weights = random_floats(l.out_channels * (l.depthwise ? 1 : l.in_channels) * area);
        size_t filter_floats = l.depthwise ? out_blocks * 16 * area : onyx_nchwc_filter_floats(l.out_channels, l.in_channels, area);
        float *filter = aligned_alloc(64, filter_floats * sizeof(float));
        if (l.depthwise) onyx_nchwc_pack_depthwise_filter(weights, l.out_channels, l.kernel, l.kernel, filter);
        else onyx_nchwc_pack_filter(weights, l.out_channels, l.in_channels, l.kernel, l.kernel, filter);
        float *bias = calloc(out_blocks * 16, sizeof(float));
        for (size_t c = 0; c < l.out_channels; c++) bias[c] = 0.01f * (float)c;
        size_t output_floats = out_blocks * 16 * g.out_h * g.out_w;
        float *output = aligned_alloc(64, output_floats * sizeof(float));
        float *expected = aligned_alloc(64, output_floats * sizeof(float));
        size_t groups = onyx_nchwc_filter_groups(l.out_channels);
        const onyx_activation relu6 = {.kind = ONYX_ACTIVATION_CLIP, .alpha = 0, .beta = 6};
        const onyx_activation relu = {.kind = ONYX_ACTIVATION_CLIP, .alpha = 0, .beta = INFINITY};

        double diff = 0;
        if (l.depthwise) {
            onyx_nchwc_depthwise(ONYX_ISA_PORTABLE, &g, input, filter, bias, expected, 0, out_blocks, 0, g.out_h, &relu6);
            onyx_nchwc_depthwise(isa, &g, input, filter, bias, output, 0, out_blocks, 0, g.out_h / 2, &relu6);
            onyx_nchwc_depthwise(isa, &g, input, filter, bias, output, 0, out_blocks, g.out_h / 2, g.out_h, &relu6);
            for (size_t j = 0; j < output_floats; j++) diff = fmax(diff, fabs(output[j] - expected[j]));
            goto timed;
        }
        onyx_nchwc_conv(ONYX_ISA_PORTABLE, &g, input, filter, bias, expected, 0, groups, 0, g.out_h, 0, &relu6);
        onyx_nchwc_conv_tiles(isa, tiles, &g, input, filter, bias, output, 0, groups, 0, g.out_h, 0, &relu6);
        for (size_t j = 0; j < output_floats; j++) diff = fmax(diff, fabs(output[j] - expected[j]));
        for (size_t j = 0; j < output_floats; j++) output[j] = expected[j] = 0.01f * (float)(j % 7);
        onyx_nchwc_conv(ONYX_ISA_PORTABLE, &g, input, filter, bias, expected, 0, groups, 0, g.out_h, 1, NULL);
        onyx_nchwc_conv_tiles(isa, tiles, &g, input, filter, bias, output, 0, groups, 0, g.out_h / 2, 1, NULL);
        onyx_nchwc_conv_tiles(isa, tiles, &g, input, filter, bias, output, 0, groups, g.out_h / 2, g.out_h, 1, NULL);
        for (size_t j = 0; j < output_floats; j++) diff = fmax(diff, fabs(output[j] - expected[j]));

    timed:;
        static double times[4096];
        size_t runs = 0;
        double start = now();
        while (runs < 4096 && (now() - start < 0.5 || runs < 5)) {
            double t = now();
            if (l.depthwise) onyx_nchwc_depthwise(isa, &g, input, filter, bias, output, 0, out_blocks, 0, g.out_h, &relu);
            else onyx_nchwc_conv_tiles(isa, tiles, &g, input, filter, bias, output, 0, groups, 0, g.out_h, 0, &relu);
            times[runs++] = now() - t;
        }
        qsort(times, runs, sizeof *times, by_value);
        double median = times[runs / 2];
        double flop = 2.0 * l.out_channels * (l.depthwise ? 1 : l.in_channels) * area * g.out_h * g.out_w;
        char share[16] = "–";
        if (peak > 0) snprintf(share, sizeof share, "%.0f%%", 100 * flop / median / 1e9 / peak);
        printf("| %s | %.1f | %.3f | %.3f | %.1f | %s | %.1e |\n", l.name, flop / 1e6, median * 1e3, times[0] * 1e3,
               flop / median / 1e9, share, diff);
        free(input), free(weights), free(filter), free(bias), free(output), free(expected);
    }
    return 0;
}
