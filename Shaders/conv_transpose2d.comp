#version 450
#extension GL_GOOGLE_include_directive : require
// Float transposed 2-D convolution (ConvTranspose2dLayer).
#include "conv_transpose.glsl"
