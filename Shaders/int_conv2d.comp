#version 450
#extension GL_GOOGLE_include_directive : require
// Integer 2-D convolution (IntConv2dLayer, not transposed): Int32 accumulation, then
// IntegerRequantization. Int32 sums are exact in any order, so the result is bit-exact.
#define INTEGER 1
#include "conv.glsl"
