#version 450
#extension GL_GOOGLE_include_directive : require
// Float 2-D convolution (Conv2dLayer).
#include "conv.glsl"
