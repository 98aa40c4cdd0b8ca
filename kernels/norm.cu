// Normalisation kernels of npx.batch_norm, npx.layer_norm and npx.group_norm/instance_norm on a
// GPU (gluonlite/npx/norm.py):
// storage type T (float, gl_f16, gl_bf16) read and written directly, every sum in float32.
//
// Batch norm, data viewed as [outer, C, inner] (C = the channel axis, outer and inner the
// products of the axes before and after it), statistics per channel over m = outer * inner:
//   bn_stats_partial    one block per (channel, chunk of m): a Welford (mean, M2) pair of the
//                       chunk, each thread's running pair merged in a fixed tree;
//   bn_stats_finish     one thread per channel: the chunks' pairs merged in chunk order, the
//                       batch mean and (biased) variance, 1/sqrt(var + eps), and optionally the
//                       running statistics' update running = running * momentum + batch * keep;
//   bn_forward          y = ((x - mean) * invstd) * gamma + beta, elementwise;
//   bn_backward_partial per (channel, chunk): sums of dy and dy * xhat (xhat recomputed);
//   bn_backward_finish  per channel: dbeta = sum dy, dgamma = sum dy * xhat, and the two
//                       terms of dx, gamma * sum dy / m and gamma * sum dy * xhat / m;
//   bn_backward_dx      dx = invstd * (dy * gamma - t1 - xhat * t2) in training, or
//                       dy * gamma * invstd with given statistics.
// Welford's update is exact in the way two-pass variance is (no cancellation for data with a
// large mean) but reads x once. Every result depends on the launch geometry only, never on
// the order threads run in: sums and merges follow fixed trees and chunk orders.
//
// Layer norm over the last axis (ln_* kernels) and group norm (gn_* kernels) are described
// further down.
//
// Batch norm's reductions use blocks of exactly GL_NORM_THREADS threads (gluonlite/_kernels.py
// launches them so) and static shared memory with __syncthreads() trees: no warp shuffles, so
// the CPU host harness (tests/cuda_host/) runs the same text. Header-free apart from the sibling
// gl_convert.cuh (pasted in by the loader for NVRTC).

#include "gl_convert.cuh"

#define GL_NORM_THREADS 256

// Merge Welford pair (nb, mean_b, m2_b) into (n, mean, m2) (Chan et al.'s pairwise update).
__device__ __forceinline__ void gl_welford_merge(float& n, float& mean, float& m2, float nb,
                                                 float mean_b, float m2_b) {
  if (nb == 0.0f) return;
  const float total = n + nb;
  const float delta = mean_b - mean;
  const float wb = nb / total;
  mean += delta * wb;
  m2 += m2_b + delta * delta * n * wb;
  n = total;
}

// Walks the flat indices k, k + step, ... of an [outer, C, inner] array, keeping
// k / inner and k % inner without a division per step (step is fixed, so its quotient and
// remainder are computed once).
struct gl_walk {
  long long row, i;     // k / inner, k % inner
  long long drow, di;   // step / inner, step % inner
  long long inner;

  __device__ __forceinline__ void start(long long k, long long step, long long inner_) {
    inner = inner_;
    row = k / inner;
    i = k - row * inner;
    drow = step / inner;
    di = step - drow * inner;
  }
  __device__ __forceinline__ void advance() {
    i += di;
    row += drow;
    if (i >= inner) {
      i -= inner;
      ++row;
    }
  }
};

// The element address of index k (of m = outer * inner) in channel c.
__device__ __forceinline__ long long gl_bn_address(const gl_walk& w, int c, int channels) {
  return (w.row * channels + c) * w.inner + w.i;
}

// Two per-thread sums of a block of `threads` threads (a power of two) reduced in place, in
// one fixed tree order (the same bits on every run): afterwards a[0] and b[0] hold the
// block's totals. Every thread of the block calls it.
__device__ __forceinline__ void gl_block_sum_pair(float* a, float* b, int t, int threads) {
  __syncthreads();
  for (int half = threads / 2; half > 0; half >>= 1) {
    if (t < half) {
      a[t] += a[t + half];
      b[t] += b[t + half];
    }
    __syncthreads();
  }
}

// Partial Welford pairs: block (c, j) covers indices [j * chunk, min(m, (j + 1) * chunk)) of
// channel c and writes partial[(c * chunks + j) * 2 + {0, 1}] = (mean, M2) of its elements.
template <class T>
__global__ void __launch_bounds__(GL_NORM_THREADS)
    bn_stats_partial(const T* __restrict__ x, long long outer, int channels, long long inner,
                     long long chunk, float* __restrict__ partial) {
  __shared__ float s_n[GL_NORM_THREADS];
  __shared__ float s_mean[GL_NORM_THREADS];
  __shared__ float s_m2[GL_NORM_THREADS];
  const int c = blockIdx.x;
  const long long first = (long long)blockIdx.y * chunk;
  const long long m = outer * inner;
  const long long end = first + chunk < m ? first + chunk : m;
  const int t = threadIdx.x;
  float n = 0.0f, mean = 0.0f, m2 = 0.0f;
  if (first + t < end) {
    gl_walk w;
    w.start(first + t, GL_NORM_THREADS, inner);
    for (long long k = first + t; k < end; k += GL_NORM_THREADS) {
      const float v = gl_to_float(x[gl_bn_address(w, c, channels)]);
      n += 1.0f;
      const float d = v - mean;
      mean += d / n;
      m2 += d * (v - mean);
      w.advance();
    }
  }
  s_n[t] = n;
  s_mean[t] = mean;
  s_m2[t] = m2;
  __syncthreads();
  for (int half = GL_NORM_THREADS / 2; half > 0; half >>= 1) {
    if (t < half) {
      gl_welford_merge(s_n[t], s_mean[t], s_m2[t], s_n[t + half], s_mean[t + half],
                       s_m2[t + half]);
    }
    __syncthreads();
  }
  if (t == 0) {
    float* out = partial + ((long long)c * gridDim.y + blockIdx.y) * 2;
    out[0] = s_mean[0];
    out[1] = s_m2[0];
  }
}

// Per channel (one thread each): merge the chunks' pairs in order into the batch mean and
// biased variance (M2 / m), write invstd = 1 / sqrt(var + eps) and, if `update`, the running
// statistics running = running * momentum + batch * keep (keep = 1 - momentum, rounded on
// the host as NumPy rounds it).
__global__ void bn_stats_finish(const float* __restrict__ partial, int channels, int chunks,
                                long long chunk, long long m, float eps, float momentum,
                                float keep, int update, float* __restrict__ mean_out,
                                float* __restrict__ var_out, float* __restrict__ invstd,
                                float* __restrict__ running_mean,
                                float* __restrict__ running_var) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  float n = 0.0f, mean = 0.0f, m2 = 0.0f;
  for (int j = 0; j < chunks; ++j) {
    const long long left = m - (long long)j * chunk;
    const float nb = (float)(left < chunk ? left : chunk);
    const float* p = partial + ((long long)c * chunks + j) * 2;
    gl_welford_merge(n, mean, m2, nb, p[0], p[1]);
  }
  const float var = m2 / (float)m;
  mean_out[c] = mean;
  var_out[c] = var;
  invstd[c] = 1.0f / sqrtf(var + eps);
  if (update) {
    running_mean[c] = running_mean[c] * momentum + mean * keep;
    running_var[c] = running_var[c] * momentum + var * keep;
  }
}

// y = ((x - mean[c]) * invstd[c]) * gamma[c] + beta[c] over all n elements, gamma and beta
// skipped where has_gamma / has_beta are 0 (their pointers are then never read).
template <class T>
__global__ void bn_forward(const T* __restrict__ x, long long n, int channels, long long inner,
                           const float* __restrict__ mean, const float* __restrict__ invstd,
                           const float* __restrict__ gamma, int has_gamma,
                           const float* __restrict__ beta, int has_beta, T* __restrict__ y) {
  const long long step = (long long)gridDim.x * blockDim.x;
  const long long k0 = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (k0 >= n) return;
  gl_walk w;
  w.start(k0, step, inner);
  for (long long k = k0; k < n; k += step) {
    const int c = (int)(w.row % channels);
    float v = (gl_to_float(x[k]) - mean[c]) * invstd[c];
    if (has_gamma) v = v * gamma[c];
    if (has_beta) v = v + beta[c];
    y[k] = gl_from_float<T>(v);
    w.advance();
  }
}

// Per (channel, chunk) block, as bn_stats_partial: partial[(c * chunks + j) * 2 + {0, 1}] =
// (sum dy, sum dy * xhat) over the chunk, xhat = (x - mean[c]) * invstd[c].
template <class T>
__global__ void __launch_bounds__(GL_NORM_THREADS)
    bn_backward_partial(const T* __restrict__ x, const T* __restrict__ dy, long long outer,
                        int channels, long long inner, long long chunk,
                        const float* __restrict__ mean, const float* __restrict__ invstd,
                        float* __restrict__ partial) {
  __shared__ float s_dy[GL_NORM_THREADS];
  __shared__ float s_dyx[GL_NORM_THREADS];
  const int c = blockIdx.x;
  const long long first = (long long)blockIdx.y * chunk;
  const long long m = outer * inner;
  const long long end = first + chunk < m ? first + chunk : m;
  const int t = threadIdx.x;
  const float mu = mean[c], inv = invstd[c];
  float sdy = 0.0f, sdyx = 0.0f;
  if (first + t < end) {
    gl_walk w;
    w.start(first + t, GL_NORM_THREADS, inner);
    for (long long k = first + t; k < end; k += GL_NORM_THREADS) {
      const long long a = gl_bn_address(w, c, channels);
      const float g = gl_to_float(dy[a]);
      sdy += g;
      sdyx += g * ((gl_to_float(x[a]) - mu) * inv);
      w.advance();
    }
  }
  s_dy[t] = sdy;
  s_dyx[t] = sdyx;
  gl_block_sum_pair(s_dy, s_dyx, t, GL_NORM_THREADS);
  if (t == 0) {
    float* out = partial + ((long long)c * gridDim.y + blockIdx.y) * 2;
    out[0] = s_dy[0];
    out[1] = s_dyx[0];
  }
}

// Per channel: the chunks' sums added in order; dbeta = sum dy, dgamma = sum dy * xhat and
// terms[c * 2 + {0, 1}] = (gamma * sum dy / count, gamma * sum dy * xhat / count), the mean
// terms of dx (gamma taken as 1 where has_gamma is 0).
__global__ void bn_backward_finish(const float* __restrict__ partial, int channels, int chunks,
                                   const float* __restrict__ gamma, int has_gamma, float count,
                                   float* __restrict__ dgamma, float* __restrict__ dbeta,
                                   float* __restrict__ terms) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  float sdy = 0.0f, sdyx = 0.0f;
  for (int j = 0; j < chunks; ++j) {
    const float* p = partial + ((long long)c * chunks + j) * 2;
    sdy += p[0];
    sdyx += p[1];
  }
  dbeta[c] = sdy;
  dgamma[c] = sdyx;
  const float g = has_gamma ? gamma[c] : 1.0f;
  terms[c * 2] = g * sdy / count;
  terms[c * 2 + 1] = g * sdyx / count;
}

// dx = invstd * (dy * gamma - terms[0] - xhat * terms[1]) where batch_stats is 1 (training:
// the statistics depend on x), dx = dy * gamma * invstd otherwise; gamma 1 where has_gamma
// is 0; terms (and x) are not read without batch_stats.
template <class T>
__global__ void bn_backward_dx(const T* __restrict__ x, const T* __restrict__ dy, long long n,
                               int channels, long long inner, const float* __restrict__ mean,
                               const float* __restrict__ invstd,
                               const float* __restrict__ gamma, int has_gamma,
                               const float* __restrict__ terms, int batch_stats,
                               T* __restrict__ dx) {
  const long long step = (long long)gridDim.x * blockDim.x;
  const long long k0 = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (k0 >= n) return;
  gl_walk w;
  w.start(k0, step, inner);
  for (long long k = k0; k < n; k += step) {
    const int c = (int)(w.row % channels);
    float d = gl_to_float(dy[k]);
    if (has_gamma) d = d * gamma[c];
    float v;
    if (batch_stats) {
      const float xhat = (gl_to_float(x[k]) - mean[c]) * invstd[c];
      v = invstd[c] * (d - terms[c * 2] - xhat * terms[c * 2 + 1]);
    } else {
      v = d * invstd[c];
    }
    dx[k] = gl_from_float<T>(v);
    w.advance();
  }
}

// ---------------------------------------------------------------------------------------
// Layer norm over the last axis: data viewed as [rows, d], statistics per row.
//   ln_forward           one block per row (grid-stride over rows): the row's Welford pair
//                        merged in a tree, then y = ((x - mean) * invstd) * gamma + beta;
//                        mean, variance and invstd per row kept for the backward;
//   ln_backward          one block per row: sums of dxhat = dy * gamma and dxhat * xhat,
//                        then dx = invstd * (dxhat - sum dxhat / d - xhat * sum dxhat xhat / d);
//   ln_param_partial     blocks of 32 columns x 8 row lanes over a chunk of rows: per column,
//                        sums of dy * xhat (dgamma) and dy (dbeta);
//   ln_param_finish      per column: the chunks' sums added in order.
// The row kernels take any power-of-two block size up to GL_NORM_THREADS (short rows get
// small blocks); their trees run over blockDim.x.

#define GL_LN_COLUMNS 32
#define GL_LN_LANES 8

// The block's Welford pair of one row, merged in a fixed tree; every thread gets the result.
template <class T>
__device__ __forceinline__ void gl_row_stats(const T* __restrict__ row, int d, float* s_n,
                                             float* s_mean, float* s_m2, float& mean,
                                             float& var) {
  const int t = threadIdx.x;
  float n = 0.0f, mu = 0.0f, m2 = 0.0f;
  for (int k = t; k < d; k += blockDim.x) {
    const float v = gl_to_float(row[k]);
    n += 1.0f;
    const float delta = v - mu;
    mu += delta / n;
    m2 += delta * (v - mu);
  }
  s_n[t] = n;
  s_mean[t] = mu;
  s_m2[t] = m2;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half >>= 1) {
    if (t < half) {
      gl_welford_merge(s_n[t], s_mean[t], s_m2[t], s_n[t + half], s_mean[t + half],
                       s_m2[t + half]);
    }
    __syncthreads();
  }
  mean = s_mean[0];
  var = s_m2[0] / (float)d;
  __syncthreads();  // the next row overwrites the slots every thread just read
}

template <class T>
__global__ void __launch_bounds__(GL_NORM_THREADS)
    ln_forward(const T* __restrict__ x, long long rows, int d, float eps,
               const float* __restrict__ gamma, int has_gamma, const float* __restrict__ beta,
               int has_beta, T* __restrict__ y, float* __restrict__ mean_out,
               float* __restrict__ var_out, float* __restrict__ invstd_out) {
  __shared__ float s_n[GL_NORM_THREADS];
  __shared__ float s_mean[GL_NORM_THREADS];
  __shared__ float s_m2[GL_NORM_THREADS];
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = x + r * d;
    float mean, var;
    gl_row_stats(row, d, s_n, s_mean, s_m2, mean, var);
    const float inv = 1.0f / sqrtf(var + eps);
    if (threadIdx.x == 0) {
      mean_out[r] = mean;
      var_out[r] = var;
      invstd_out[r] = inv;
    }
    T* out = y + r * d;
    for (int k = threadIdx.x; k < d; k += blockDim.x) {
      float v = (gl_to_float(row[k]) - mean) * inv;
      if (has_gamma) v = v * gamma[k];
      if (has_beta) v = v + beta[k];
      out[k] = gl_from_float<T>(v);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(GL_NORM_THREADS)
    ln_backward(const T* __restrict__ x, const T* __restrict__ dy, long long rows, int d,
                const float* __restrict__ mean, const float* __restrict__ invstd,
                const float* __restrict__ gamma, int has_gamma, T* __restrict__ dx) {
  __shared__ float s1[GL_NORM_THREADS];
  __shared__ float s2[GL_NORM_THREADS];
  const int t = threadIdx.x;
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * d;
    const T* gr = dy + r * d;
    const float mu = mean[r], inv = invstd[r];
    float a = 0.0f, b = 0.0f;
    for (int k = t; k < d; k += blockDim.x) {
      float g = gl_to_float(gr[k]);
      if (has_gamma) g = g * gamma[k];
      a += g;
      b += g * ((gl_to_float(xr[k]) - mu) * inv);
    }
    s1[t] = a;
    s2[t] = b;
    gl_block_sum_pair(s1, s2, t, blockDim.x);
    const float t1 = s1[0] / (float)d, t2 = s2[0] / (float)d;
    __syncthreads();  // s1/s2 are rewritten for the next row
    T* out = dx + r * d;
    for (int k = t; k < d; k += blockDim.x) {
      float g = gl_to_float(gr[k]);
      if (has_gamma) g = g * gamma[k];
      const float xhat = (gl_to_float(xr[k]) - mu) * inv;
      out[k] = gl_from_float<T>(inv * (g - t1 - xhat * t2));
    }
  }
}

// Block (column block i, chunk j) of GL_LN_COLUMNS x GL_LN_LANES threads: for its columns,
// the sums over rows [j * chunk, min(rows, (j + 1) * chunk)) of dy * xhat and dy, into
// partial[(j * 2 + {0, 1}) * d + column].
template <class T>
__global__ void __launch_bounds__(GL_LN_COLUMNS * GL_LN_LANES)
    ln_param_partial(const T* __restrict__ x, const T* __restrict__ dy, long long rows, int d,
                     long long chunk, const float* __restrict__ mean,
                     const float* __restrict__ invstd, float* __restrict__ partial) {
  __shared__ float s_g[GL_LN_LANES][GL_LN_COLUMNS];
  __shared__ float s_b[GL_LN_LANES][GL_LN_COLUMNS];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int column = blockIdx.x * GL_LN_COLUMNS + tx;
  const long long first = (long long)blockIdx.y * chunk;
  const long long end = first + chunk < rows ? first + chunk : rows;
  float dg = 0.0f, db = 0.0f;
  if (column < d) {
    for (long long r = first + ty; r < end; r += GL_LN_LANES) {
      const float g = gl_to_float(dy[r * d + column]);
      db += g;
      dg += g * ((gl_to_float(x[r * d + column]) - mean[r]) * invstd[r]);
    }
  }
  s_g[ty][tx] = dg;
  s_b[ty][tx] = db;
  __syncthreads();
  for (int half = GL_LN_LANES / 2; half > 0; half >>= 1) {
    if (ty < half) {
      s_g[ty][tx] += s_g[ty + half][tx];
      s_b[ty][tx] += s_b[ty + half][tx];
    }
    __syncthreads();
  }
  if (ty == 0 && column < d) {
    partial[((long long)blockIdx.y * 2) * d + column] = s_g[0][tx];
    partial[((long long)blockIdx.y * 2 + 1) * d + column] = s_b[0][tx];
  }
}

// Per column: dgamma and dbeta, the chunks' sums added in chunk order.
__global__ void ln_param_finish(const float* __restrict__ partial, int chunks, int d,
                                float* __restrict__ dgamma, float* __restrict__ dbeta) {
  const int column = blockIdx.x * blockDim.x + threadIdx.x;
  if (column >= d) return;
  float dg = 0.0f, db = 0.0f;
  for (int j = 0; j < chunks; ++j) {
    dg += partial[((long long)j * 2) * d + column];
    db += partial[((long long)j * 2 + 1) * d + column];
  }
  dgamma[column] = dg;
  dbeta[column] = db;
}

// ---------------------------------------------------------------------------------------
// Group norm (npx.group_norm, and npx.instance_norm as its case of one channel per group):
// data (N, C, spatial...) viewed as [rows = N * G, d = (C / G) * S] (S the product of the
// spatial axes), row r = n * G + g holding channels g * C/G ... (g + 1) * C/G - 1, each as S
// contiguous elements. The row statistics are layer norm's (gl_row_stats); unlike layer
// norm, gamma and beta are per channel, c = g * C/G + k / S for element k of row r, so the
// row kernels walk k with gl_walk (k / S without a division per element):
//   gn_forward           one block per row: y = ((x - mean) * invstd) * gamma[c] + beta[c],
//                        mean, variance and invstd per row kept for the backward;
//   gn_backward          one block per row: ln_backward's dx with dxhat = dy * gamma[c];
//   gn_param_partial     one block per (channel, chunk of its N * S elements), as
//                        bn_backward_partial: sums of dy * xhat (xhat with the statistics
//                        of the element's row n * G + c / (C/G)) and dy, written in
//                        ln_param_partial's layout so that ln_param_finish adds the chunks.

template <class T>
__global__ void __launch_bounds__(GL_NORM_THREADS)
    gn_forward(const T* __restrict__ x, long long rows, int d, long long spatial, int groups,
               float eps, const float* __restrict__ gamma, int has_gamma,
               const float* __restrict__ beta, int has_beta, T* __restrict__ y,
               float* __restrict__ mean_out, float* __restrict__ var_out,
               float* __restrict__ invstd_out) {
  __shared__ float s_n[GL_NORM_THREADS];
  __shared__ float s_mean[GL_NORM_THREADS];
  __shared__ float s_m2[GL_NORM_THREADS];
  const int per_group = (int)(d / spatial);
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = x + r * d;
    float mean, var;
    gl_row_stats(row, d, s_n, s_mean, s_m2, mean, var);
    const float inv = 1.0f / sqrtf(var + eps);
    if (threadIdx.x == 0) {
      mean_out[r] = mean;
      var_out[r] = var;
      invstd_out[r] = inv;
    }
    const int c0 = (int)(r % groups) * per_group;
    T* out = y + r * d;
    const int t = threadIdx.x;
    if (t < d) {
      gl_walk w;
      w.start(t, blockDim.x, spatial);
      for (int k = t; k < d; k += blockDim.x) {
        const int c = c0 + (int)w.row;
        float v = (gl_to_float(row[k]) - mean) * inv;
        if (has_gamma) v = v * gamma[c];
        if (has_beta) v = v + beta[c];
        out[k] = gl_from_float<T>(v);
        w.advance();
      }
    }
  }
}

template <class T>
__global__ void __launch_bounds__(GL_NORM_THREADS)
    gn_backward(const T* __restrict__ x, const T* __restrict__ dy, long long rows, int d,
                long long spatial, int groups, const float* __restrict__ mean,
                const float* __restrict__ invstd, const float* __restrict__ gamma,
                int has_gamma, T* __restrict__ dx) {
  __shared__ float s1[GL_NORM_THREADS];
  __shared__ float s2[GL_NORM_THREADS];
  const int t = threadIdx.x;
  const int per_group = (int)(d / spatial);
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * d;
    const T* gr = dy + r * d;
    const float mu = mean[r], inv = invstd[r];
    const int c0 = (int)(r % groups) * per_group;
    float a = 0.0f, b = 0.0f;
    if (t < d) {
      gl_walk w;
      w.start(t, blockDim.x, spatial);
      for (int k = t; k < d; k += blockDim.x) {
        float g = gl_to_float(gr[k]);
        if (has_gamma) g = g * gamma[c0 + (int)w.row];
        a += g;
        b += g * ((gl_to_float(xr[k]) - mu) * inv);
        w.advance();
      }
    }
    s1[t] = a;
    s2[t] = b;
    gl_block_sum_pair(s1, s2, t, blockDim.x);
    const float t1 = s1[0] / (float)d, t2 = s2[0] / (float)d;
    __syncthreads();  // s1/s2 are rewritten for the next row
    T* out = dx + r * d;
    if (t < d) {
      gl_walk w;
      w.start(t, blockDim.x, spatial);
      for (int k = t; k < d; k += blockDim.x) {
        float g = gl_to_float(gr[k]);
        if (has_gamma) g = g * gamma[c0 + (int)w.row];
        const float xhat = (gl_to_float(xr[k]) - mu) * inv;
        out[k] = gl_from_float<T>(inv * (g - t1 - xhat * t2));
        w.advance();
      }
    }
  }
}

// Block (c, j) covers indices [j * chunk, min(N * S, (j + 1) * chunk)) of channel c (index
// n * S + s) and writes partial[(j * 2) * C + c] = sum dy * xhat, partial[(j * 2 + 1) * C + c]
// = sum dy over them.
template <class T>
__global__ void __launch_bounds__(GL_NORM_THREADS)
    gn_param_partial(const T* __restrict__ x, const T* __restrict__ dy, long long batch,
                     int channels, long long spatial, int groups, long long chunk,
                     const float* __restrict__ mean, const float* __restrict__ invstd,
                     float* __restrict__ partial) {
  __shared__ float s_g[GL_NORM_THREADS];
  __shared__ float s_b[GL_NORM_THREADS];
  const int c = blockIdx.x;
  const int g = c / (channels / groups);
  const long long first = (long long)blockIdx.y * chunk;
  const long long m = batch * spatial;
  const long long end = first + chunk < m ? first + chunk : m;
  const int t = threadIdx.x;
  float dg = 0.0f, db = 0.0f;
  if (first + t < end) {
    gl_walk w;
    w.start(first + t, GL_NORM_THREADS, spatial);
    for (long long k = first + t; k < end; k += GL_NORM_THREADS) {
      const long long a = gl_bn_address(w, c, channels);
      const long long r = w.row * groups + g;
      const float v = gl_to_float(dy[a]);
      db += v;
      dg += v * ((gl_to_float(x[a]) - mean[r]) * invstd[r]);
      w.advance();
    }
  }
  s_g[t] = dg;
  s_b[t] = db;
  gl_block_sum_pair(s_g, s_b, t, GL_NORM_THREADS);
  if (t == 0) {
    partial[((long long)blockIdx.y * 2) * channels + c] = s_g[0];
    partial[((long long)blockIdx.y * 2 + 1) * channels + c] = s_b[0];
  }
}
