// Shared declarations of the PSIC compute kernels.
//
// Every kernel reads one tensor view and writes another: binding 0 is the buffer holding the
// input tensor, binding 1 the buffer holding the output tensor, binding 2 the layer's packed
// parameters. Views are element offsets into those buffers (a channel range of a planar CHW
// tensor is contiguous), which is how concatenation and slicing cost no copies.
//
// Shapes and offsets travel as push constants so one pipeline serves every image size;
// kernel geometry and blocking are specialization constants so loops over taps and
// register blocks have constant trip counts and are fully unrolled by the driver.
#extension GL_EXT_control_flow_attributes : require

#ifdef INTEGER
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#define SCALAR int
#define ZERO 0
#else
#define SCALAR float
#define ZERO 0.0
#endif

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z = 1) in;

layout(push_constant) uniform PushConstants {
    int inC, inH, inW;          // input view: channels, plane size
    int outC, outH, outW;       // output view
    int inOffset, outOffset;    // element offsets of the views into their buffers
    int biasOffset;             // element offset of the bias in the parameter buffer
    int multiplierOffset;       // integer layers: per-channel requantisation multiplier
    int shiftOffset;            // integer layers: per-channel right shift
    int outMin, outMax;         // integer layers: output clamp
    int leakyNumerator;         // integer layers: leaky slope * 256
    float leakySlope;           // float layers
    int qH, qW;                 // transposed layers: rows/columns of this phase's output grid
    // Winograd convolutions (conv2d_winograd_*.comp), which run a layer in bands of tile rows:
    int tileRow0;               // first tile row of this band
    int tilesX;                 // tiles per row
    int bandTiles;              // tiles in this band
    int bandStride;             // elements per (transform point, channel) row of the scratch
} pc;

layout(std430, binding = 0) readonly buffer InputBuffer { SCALAR src[]; };
layout(std430, binding = 1) writeonly buffer OutputBuffer { SCALAR dst[]; };
layout(std430, binding = 2) readonly buffer ParamBuffer { SCALAR params[]; };

// The same input and parameter buffers as texel buffers (one-component and four-component
// views). The hot loops read through these: on lavapipe a storage-buffer load is a per-lane
// loop with a bounds check and a branch per lane (tens of cycles), while a texel fetch is a
// vector gather, and a four-component fetch brings four weights at once. On GPUs texel
// fetches go through the texture cache, which suits the reuse pattern of convolutions.
// TEXEL_INPUT is off when the input tensor is larger than maxTexelBufferElements.
#ifdef INTEGER
layout(binding = 3) uniform isamplerBuffer srcTexels;
layout(binding = 4) uniform isamplerBuffer paramTexels;
layout(binding = 5) uniform isamplerBuffer srcQuads;
#define PARAM4 ivec4
#else
layout(binding = 3) uniform samplerBuffer srcTexels;
layout(binding = 4) uniform samplerBuffer paramTexels;
layout(binding = 5) uniform samplerBuffer srcQuads;   // four-component view of the input
#define PARAM4 vec4
#endif
layout(constant_id = 10) const bool TEXEL_INPUT = true;

SCALAR loadInput(int i) {
    if (TEXEL_INPUT) return texelFetch(srcTexels, i).x;
    return src[i];
}

// Activation: 0 none, 1 relu, 2 leaky relu.
layout(constant_id = 2) const int ACT = 0;

#ifdef INTEGER
// Exactly IntegerRequantization.apply: 64-bit product, round half up, arithmetic shifts, clamp.
int requantize(int acc, int c) {
    int s = params[pc.shiftOffset + c];
    int64_t v = (int64_t(acc) * int64_t(params[pc.multiplierOffset + c]) + (int64_t(1) << (s - 1))) >> s;
    if (ACT == 1) {
        v = max(v, int64_t(0));
    } else if (ACT == 2) {
        if (v < 0) v = (v * int64_t(pc.leakyNumerator)) >> 8;
    }
    return int(clamp(v, int64_t(pc.outMin), int64_t(pc.outMax)));
}
#define FINISH(acc, c) requantize(acc, c)
#else
float activate(float v) {
    if (ACT == 1) return max(v, 0.0);
    if (ACT == 2) return v < 0.0 ? v * pc.leakySlope : v;
    return v;
}
#define FINISH(acc, c) activate(acc)
#endif
