// The two data-movement kernels of npx.convolution / npx.pooling on a GPU (gluonlite/npx/conv.py).
//
// Both work on the "phase layout": the padded input, channels last, split into its stride phases
// and flattened to rows of `width` elements, in which kernel tap j of output row r reads row
// r + offsets[j] (see the module docstring of conv.py).
//
// conv_gather_rows: out[i, :] = src[index[i], :] for every entry of a table of row numbers. The
//   convolution's column block (im2col, one cache-sized block of output rows at a time) is this
//   gather with index[r, j] = r0 + r + offsets[j]; cuBLAS then multiplies the block with the
//   weight. The kernel moves raw bits of the element width U (unsigned short / int / long long),
//   so one instantiation per width serves every dtype.
// pool_reduce: out[r, c] = max or sum over taps j of src[(r + offsets[j]) * width + c], the taps in
//   order (the same order, hence the same float sums, as the NumPy path). T is float or double:
//   conv.py widens float16/bfloat16 to float32 before pooling, so 16-bit data accumulates in
//   float32.
//
// Grid-stride loops over 64-bit element counts; header-free, so NVRTC needs no include paths and
// the CPU host harness (tests/cuda_host/) compiles the same text with g++.

template <typename U>
__global__ void conv_gather_rows(const U* __restrict__ src, const long long* __restrict__ index,
                                 long long rows, long long width, U* __restrict__ out) {
  const long long total = rows * width;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    const long long r = i / width;
    const long long c = i - r * width;
    out[i] = src[index[r] * width + c];
  }
}

template <typename T, bool IS_MAX>
__global__ void pool_reduce(const T* __restrict__ src, const long long* __restrict__ offsets,
                            int taps, long long rows, long long width, T* __restrict__ out) {
  const long long total = rows * width;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    const long long r = i / width;
    const long long c = i - r * width;
    T acc = src[(r + offsets[0]) * width + c];
    for (int j = 1; j < taps; ++j) {
      const T v = src[(r + offsets[j]) * width + c];
      if (IS_MAX) {
        // NaN wins, as NumPy's maximum propagates it.
        acc = (v > acc || v != v) ? v : acc;
      } else {
        acc += v;
      }
    }
    out[i] = acc;
  }
}
