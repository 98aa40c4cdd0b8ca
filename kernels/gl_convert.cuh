// The 16-bit storage types of gluonlite's kernels and their float32 conversions, shared by
// fully_connected.cu, norm.cu and pool.cu.
//
// Kernel sources pull this file in with #include "gl_convert.cuh": nvcc and the CPU host
// harness's g++ resolve it next to the including file; gluonlite._kernels.kernel_source
// pastes it in place before NVRTC compiles the text, so the compile needs no include paths.
// Header-free itself (no cuda_fp16.h, no <cstdint>). The conversions have an inline-PTX
// fast path on the GPU and a portable bit-level reference path, which is what the CPU
// harness runs and what the GPU tests compare the fast path against (build with
// -DGL_PORTABLE_CONVERT).
#ifndef GL_CONVERT_CUH
#define GL_CONVERT_CUH

struct gl_f16 {
  unsigned short bits;
};
struct gl_bf16 {
  unsigned short bits;
};

#if defined(__CUDA_ARCH__) && !defined(GL_PORTABLE_CONVERT)
#define GL_FAST_CONVERT 1
#endif

__device__ __forceinline__ float gl_to_float(float v) { return v; }

__device__ __forceinline__ float gl_to_float(gl_bf16 v) {
  return __uint_as_float((unsigned int)v.bits << 16);
}

__device__ __forceinline__ float gl_to_float(gl_f16 v) {
#if defined(GL_FAST_CONVERT)
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
  return f;
#else
  const unsigned int sign = (unsigned int)(v.bits & 0x8000u) << 16;
  const unsigned int exponent = (v.bits >> 10) & 0x1fu;
  const unsigned int mantissa = v.bits & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = (float)mantissa * 5.9604644775390625e-8f;
    return __uint_as_float(__float_as_uint(magnitude) | sign);
  }
  if (exponent == 31) return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
  return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
#endif
}

template <class T>
__device__ __forceinline__ T gl_from_float(float v);

template <>
__device__ __forceinline__ float gl_from_float<float>(float v) {
  return v;
}

template <>
__device__ __forceinline__ gl_bf16 gl_from_float<gl_bf16>(float v) {
  gl_bf16 out;
#if defined(GL_FAST_CONVERT)
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(out.bits) : "f"(v));
#else
  const unsigned int u = __float_as_uint(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a (quiet) NaN
    out.bits = (unsigned short)((u >> 16) | 0x40u);
  } else {  // round to nearest, ties to even
    out.bits = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
#endif
  return out;
}

template <>
__device__ __forceinline__ gl_f16 gl_from_float<gl_f16>(float v) {
  gl_f16 out;
#if defined(GL_FAST_CONVERT)
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(out.bits) : "f"(v));
#else
  const unsigned int u = __float_as_uint(v);
  const unsigned int sign = (u >> 16) & 0x8000u;
  const unsigned int a = u & 0x7fffffffu;
  unsigned int h;
  if (a > 0x7f800000u) {
    h = 0x7e00u;  // NaN
  } else if (a >= 0x477ff000u) {
    h = 0x7c00u;  // >= 65520 rounds to infinity (65504 is the largest half)
  } else if (a >= 0x38800000u) {  // normal half: re-bias, round 13 dropped bits to even
    h = ((a >> 23) - 112u) << 10 | ((a >> 13) & 0x3ffu);
    const unsigned int rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry is still exact
  } else {  // subnormal half (units of 2^-24) or zero
    const unsigned int shift = 126u - (a >> 23);
    if (shift > 24u) {
      h = 0;  // below half of the smallest subnormal
    } else {
      const unsigned int m = (a & 0x7fffffu) | 0x800000u;
      h = m >> shift;
      const unsigned int rest = m & ((1u << shift) - 1u);
      const unsigned int half = 1u << (shift - 1u);
      if (rest > half || (rest == half && (h & 1u))) ++h;
    }
  }
  out.bits = (unsigned short)(sign | h);
#endif
  return out;
}

#endif  // GL_CONVERT_CUH
