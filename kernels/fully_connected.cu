// Fully-connected layer: y = x @ W.T + b and its backward pieces, for float32, float16 and
// bfloat16 storage with float32 accumulation.
//
// One tiled GEMM serves the three products (see gluonlite/_kernels.py for the calls):
//   c[i, j] (+)= sum_r A(i, r) * B(j, r)  (+ bias[j])
// where A(i, r) is a[i * lda + r] when A_R_CONTIG (r is the contiguous axis) and
// a[r * lda + i] otherwise; likewise B. Forward: A = x, B = W, both r-contiguous.
// dX = dY @ W: A = dY (r-contiguous), B(j=k, r=m) = W[m, k]. dW = dY.T @ X: A(i=m, r=n) =
// dY[n, m], B(j=k, r=n) = X[n, k]. The contiguity flags only change how a tile is mapped
// onto threads while loading, so that global reads stay coalesced in all three.
//
// Header-free apart from gl_convert.cuh (no cuda_fp16.h, no <cstdint>): NVRTC compiles the
// text gluonlite._kernels.kernel_source makes, with that header pasted in place, without
// include paths, and the CPU host harness (tests/cuda_host/) compiles the same file with g++.
// 16-bit values travel as gl_convert.cuh's gl_f16/gl_bf16 structs.

#include "gl_convert.cuh"

// Tile geometry; gluonlite/_kernels.py launches (ceil(ni/64), ceil(nj/64)) blocks of 16x16.
#define GL_FC_TILE 64
#define GL_FC_TILE_R 16
#define GL_FC_THREADS 256

// Stage a 64 x 16 slab (64 rows of the output dimension o, 16 of the reduction dimension r)
// into shared memory as tile[r][o], converted to float and zero-filled outside the matrix,
// so that the multiply loop needs no bounds checks.
template <class T, bool R_CONTIG>
__device__ __forceinline__ void gl_fc_stage(float (*tile)[GL_FC_TILE + 1],
                                            const T* __restrict__ src, long long ld,
                                            long long o0, int no, int r0, int nr, int t) {
#pragma unroll
  for (int p = 0; p < GL_FC_TILE * GL_FC_TILE_R / GL_FC_THREADS; ++p) {
    const int e = t + GL_FC_THREADS * p;
    // Consecutive threads walk the contiguous axis of the source.
    const int o = R_CONTIG ? e / GL_FC_TILE_R : e % GL_FC_TILE;
    const int r = R_CONTIG ? e % GL_FC_TILE_R : e / GL_FC_TILE;
    const long long go = o0 + o;
    const int gr = r0 + r;
    float v = 0.0f;
    if (go < no && gr < nr) v = gl_to_float(R_CONTIG ? src[go * ld + gr] : src[gr * ld + go]);
    tile[r][o] = v;
  }
}

// c[i, j] = (accumulate ? c[i, j] : 0) + sum_r A(i, r) B(j, r) + (has_bias ? bias[j] : 0),
// for i < ni, j < nj; nr may be 0 (c becomes bias, or is left plus nothing).
template <class T, bool A_R_CONTIG, bool B_R_CONTIG>
__global__ void __launch_bounds__(GL_FC_THREADS)
    fc_gemm(const T* __restrict__ a, long long lda, const T* __restrict__ b, long long ldb,
            const T* __restrict__ bias, int has_bias, T* __restrict__ c, long long ldc, int ni,
            int nj, int nr, int accumulate) {
  __shared__ float a_tile[GL_FC_TILE_R][GL_FC_TILE + 1];
  __shared__ float b_tile[GL_FC_TILE_R][GL_FC_TILE + 1];
  const int tx = threadIdx.x;
  const int ty = threadIdx.y;
  const int t = ty * 16 + tx;
  const long long i0 = (long long)blockIdx.x * GL_FC_TILE;
  const long long j0 = (long long)blockIdx.y * GL_FC_TILE;
  // Each thread owns rows ty + 16p and columns tx + 16q of the 64 x 64 output tile: a warp
  // then reads b_tile conflict-free and writes 16 consecutive columns of c per row.
  float acc[4][4];
#pragma unroll
  for (int p = 0; p < 4; ++p) {
#pragma unroll
    for (int q = 0; q < 4; ++q) acc[p][q] = 0.0f;
  }
  for (int r0 = 0; r0 < nr; r0 += GL_FC_TILE_R) {
    gl_fc_stage<T, A_R_CONTIG>(a_tile, a, lda, i0, ni, r0, nr, t);
    gl_fc_stage<T, B_R_CONTIG>(b_tile, b, ldb, j0, nj, r0, nr, t);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < GL_FC_TILE_R; ++r) {
      float av[4];
      float bv[4];
#pragma unroll
      for (int p = 0; p < 4; ++p) av[p] = a_tile[r][ty + 16 * p];
#pragma unroll
      for (int q = 0; q < 4; ++q) bv[q] = b_tile[r][tx + 16 * q];
#pragma unroll
      for (int p = 0; p < 4; ++p) {
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[p][q] += av[p] * bv[q];
      }
    }
    // The next iteration overwrites the tiles other threads may still be reading.
    __syncthreads();
  }
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const long long i = i0 + ty + 16 * p;
    if (i >= ni) continue;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const long long j = j0 + tx + 16 * q;
      if (j >= nj) continue;
      float v = acc[p][q];
      if (has_bias) v += gl_to_float(bias[j]);
      T* out = c + i * ldc + j;
      if (accumulate) v += gl_to_float(*out);
      *out = gl_from_float<T>(v);
    }
  }
}

// db[j] = sum_i dy[i, j] over n rows, m columns. Blocks of 32 x 32 threads: one column per
// threadIdx.x (coalesced row reads), rows split across threadIdx.y and summed in shared
// memory. blockIdx.y takes rows [blockIdx.y * rows_per_chunk, ...) so that a tall, narrow dy
// still spreads over many blocks; with several chunks each writes its float partial sums to
// partial[chunk, j] and fc_bias_grad_finish adds them in a fixed order (deterministic, unlike
// atomics). n may be 0 (db becomes 0).
template <class T>
__global__ void __launch_bounds__(1024)
    fc_bias_grad(const T* __restrict__ dy, int n, int m, int rows_per_chunk,
                 float* __restrict__ partial, T* __restrict__ db) {
  __shared__ float sums[32][33];
  const int tx = threadIdx.x;
  const int ty = threadIdx.y;
  const long long j = (long long)blockIdx.x * 32 + tx;
  const long long begin = (long long)blockIdx.y * rows_per_chunk;
  const long long end = begin + rows_per_chunk < n ? begin + rows_per_chunk : n;
  float s = 0.0f;
  if (j < m) {
    for (long long i = begin + ty; i < end; i += 32) s += gl_to_float(dy[i * m + j]);
  }
  sums[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && j < m) {
    float total = 0.0f;
    for (int k = 0; k < 32; ++k) total += sums[k][tx];
    if (gridDim.y == 1) {
      db[j] = gl_from_float<T>(total);
    } else {
      partial[blockIdx.y * (long long)m + j] = total;
    }
  }
}

// db[j] = sum over chunks of partial[chunk, j], in chunk order.
template <class T>
__global__ void __launch_bounds__(256)
    fc_bias_grad_finish(const float* __restrict__ partial, int chunks, int m,
                        T* __restrict__ db) {
  const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= m) return;
  float total = 0.0f;
  for (int c = 0; c < chunks; ++c) total += partial[c * (long long)m + j];
  db[j] = gl_from_float<T>(total);
}

// y[i, j] += bias[j] in float: the epilogue of the cuBLAS path (cuBLAS computes x @ W.T).
// blockIdx.x covers 256 columns, rows are strided over gridDim.y (at most 65535 blocks).
template <class T>
__global__ void __launch_bounds__(256)
    fc_bias_add(T* __restrict__ y, const T* __restrict__ bias, long long n, int m) {
  const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= m) return;
  const float bj = gl_to_float(bias[j]);
  for (long long i = blockIdx.y; i < n; i += gridDim.y) {
    T* out = y + i * m + j;
    *out = gl_from_float<T>(gl_to_float(*out) + bj);
  }
}
