#version 450
#extension GL_GOOGLE_include_directive : require
// Integer transposed 2-D convolution (IntConv2dLayer with transposed = true): Int32
// accumulation, then IntegerRequantization; bit-exact.
#define INTEGER 1
#include "conv_transpose.glsl"
