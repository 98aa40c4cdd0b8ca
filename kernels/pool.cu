// Pooling backward of npx.pooling on a GPU (gluonlite/npx/conv.py): max, avg and sum windows
// over 1-D, 2-D and 3-D data (1-D and 2-D as 3-D with unit leading spatial axes), channels
// first (NC[D]HW) or last (N[D]HWC, CL), storage type T (float, gl_f16, gl_bf16) read and
// written directly, sums in float32.
//
// Geometry: input spatial (id, ih, iw), output (od, oh, ow), window (kd, kh, kw), stride
// (sd, sh, sw) and low padding (pd, ph, pw); a window of output o covers the padded positions
// o * s ... o * s + k - 1 of each axis (dilation 1), positions outside the input hold -inf
// for max and 0 otherwise. Window taps are numbered j = (td * kh + th) * kw + tw.
//
//   pool_argmax     one thread per output element: the first tap holding the window's
//                   maximum (NaN anywhere in the window: -1, no tap takes the gradient),
//                   as the array-op path and MXNet pick it;
//   pool_backward   one thread per input element: the sum of the output gradients of the
//                   windows that contain it, gathered (no atomics, deterministic) in tap
//                   order, i.e. the order of the array-op path's sums: max adds a window's
//                   gradient where the element is its argmax tap, avg adds gradient / count
//                   (the window's elements inside the input, or inside the padded input with
//                   count_include_pad, at least 1), sum adds the gradient.
// Grid-stride loops over 64-bit element counts. Header-free apart from the sibling
// gl_convert.cuh (pasted in by the loader for NVRTC); the CPU host harness (tests/cuda_host/)
// compiles the same text with g++.

#include "gl_convert.cuh"

#define GL_POOL_MAX 0
#define GL_POOL_AVG 1
#define GL_POOL_SUM 2

// A 3-D geometry with its per-axis numbers in arrays, filled from the kernel arguments.
struct gl_pool_geometry {
  int in[3], out[3], k[3], s[3], p[3];
};

// Flat index -> (n, c, spatial[3]) of an [N, C, d, h, w] (or, CL, [N, d, h, w, C]) array.
template <bool CL>
__device__ __forceinline__ void gl_pool_split(long long index, int channels, const int dims[3],
                                              long long& n, int& c, int pos[3]) {
  long long rest = index;
  if (CL) {
    c = (int)(rest % channels);
    rest /= channels;
  }
  pos[2] = (int)(rest % dims[2]);
  rest /= dims[2];
  pos[1] = (int)(rest % dims[1]);
  rest /= dims[1];
  pos[0] = (int)(rest % dims[0]);
  rest /= dims[0];
  if (!CL) {
    c = (int)(rest % channels);
    rest /= channels;
  }
  n = rest;
}

template <bool CL>
__device__ __forceinline__ long long gl_pool_index(long long n, int c, int channels,
                                                   const int dims[3], const int pos[3]) {
  const long long spatial = ((long long)pos[0] * dims[1] + pos[1]) * dims[2] + pos[2];
  const long long size = (long long)dims[0] * dims[1] * dims[2];
  return CL ? (n * size + spatial) * channels + c : (n * channels + c) * size + spatial;
}

// arg[o] = the first tap of output o's window holding its maximum, -1 where it holds a NaN.
template <class T, bool CL>
__global__ void pool_argmax(const T* __restrict__ x, long long total, int channels, int id,
                            int ih, int iw, int od, int oh, int ow, int kd, int kh, int kw,
                            int sd, int sh, int sw, int pd, int ph, int pw,
                            int* __restrict__ arg) {
  const gl_pool_geometry g = {{id, ih, iw}, {od, oh, ow}, {kd, kh, kw}, {sd, sh, sw},
                              {pd, ph, pw}};
  const long long step = (long long)gridDim.x * blockDim.x;
  for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < total; o += step) {
    long long n;
    int c, opos[3], pos[3];
    gl_pool_split<CL>(o, channels, g.out, n, c, opos);
    float best = 0.0f;
    int best_tap = -1, tap = 0;
    bool nan = false;
    for (int td = 0; td < kd && !nan; ++td) {
      pos[0] = opos[0] * sd - pd + td;
      for (int th = 0; th < kh && !nan; ++th) {
        pos[1] = opos[1] * sh - ph + th;
        for (int tw = 0; tw < kw; ++tw, ++tap) {
          pos[2] = opos[2] * sw - pw + tw;
          const bool inside = pos[0] >= 0 && pos[0] < id && pos[1] >= 0 && pos[1] < ih &&
                              pos[2] >= 0 && pos[2] < iw;
          const float v = inside ? gl_to_float(x[gl_pool_index<CL>(n, c, channels, g.in, pos)])
                                 : -__uint_as_float(0x7f800000u);
          if (v != v) {
            nan = true;
            break;
          }
          if (best_tap < 0 || v > best) {  // strictly greater: the first maximum stays
            best = v;
            best_tap = tap;
          }
        }
      }
    }
    arg[o] = nan ? -1 : best_tap;
  }
}

// Elements of output position o's window along one axis that count for avg: inside the
// input, or inside the padded input [0, n + 2 * pad) with include_pad.
__device__ __forceinline__ int gl_pool_count(int o, int k, int s, int p, int n,
                                             int include_pad) {
  const int lo = include_pad ? 0 : p;
  const int hi = include_pad ? n + 2 * p : n + p;
  const int first = o * s > lo ? o * s : lo;
  const int last = o * s + k < hi ? o * s + k : hi;
  return last > first ? last - first : 0;
}

// dx[i] = sum over the windows containing input element i (in tap order) of their gradient:
// where i is the window's argmax tap (max), divided by the window's count (avg), or as is.
// arg is read for max only.
template <class T, int MODE, bool CL>
__global__ void pool_backward(const T* __restrict__ dy, const int* __restrict__ arg,
                              long long total, int channels, int id, int ih, int iw, int od,
                              int oh, int ow, int kd, int kh, int kw, int sd, int sh, int sw,
                              int pd, int ph, int pw, int include_pad, T* __restrict__ dx) {
  const gl_pool_geometry g = {{id, ih, iw}, {od, oh, ow}, {kd, kh, kw}, {sd, sh, sw},
                              {pd, ph, pw}};
  const long long step = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
    long long n;
    int c, pos[3];
    gl_pool_split<CL>(i, channels, g.in, n, c, pos);
    // Per axis, the first tap (smallest t, i.e. the last window) that reaches this element:
    // t = p - o * s for the largest o <= min(out - 1, p / s).
    int first[3];
    for (int a = 0; a < 3; ++a) {
      const int padded = pos[a] + g.p[a];
      const int o_last = padded / g.s[a] < g.out[a] - 1 ? padded / g.s[a] : g.out[a] - 1;
      first[a] = padded - o_last * g.s[a];
    }
    float acc = 0.0f;
    int opos[3];
    for (int td = first[0]; td < kd && td <= pos[0] + pd; td += sd) {
      opos[0] = (pos[0] + pd - td) / sd;
      for (int th = first[1]; th < kh && th <= pos[1] + ph; th += sh) {
        opos[1] = (pos[1] + ph - th) / sh;
        for (int tw = first[2]; tw < kw && tw <= pos[2] + pw; tw += sw) {
          opos[2] = (pos[2] + pw - tw) / sw;
          const long long o = gl_pool_index<CL>(n, c, channels, g.out, opos);
          if (MODE == GL_POOL_MAX) {
            if (arg[o] == (td * kh + th) * kw + tw) acc += gl_to_float(dy[o]);
          } else if (MODE == GL_POOL_AVG) {
            int count = 1;
            for (int a = 0; a < 3; ++a) {
              count *= gl_pool_count(opos[a], g.k[a], g.s[a], g.p[a], g.in[a], include_pad);
            }
            acc += gl_to_float(dy[o]) / (float)(count > 1 ? count : 1);
          } else {
            acc += gl_to_float(dy[o]);
          }
        }
      }
    }
    dx[i] = gl_from_float<T>(acc);
  }
}
