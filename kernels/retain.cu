// Row-sparse retain: keep the rows of a row-sparse array whose ids were requested.
//
// The host side (gluonlite/_kernels.py) runs retain_mark to flag every stored row whose id
// was requested, compacts the flags into row numbers (which come out sorted and unique, as
// the stored ids are, whatever order and repetitions the request had: no sort needed), then
// runs retain_gather to copy those rows. The copy does not care about the element type: rows
// travel in the widest unit U (16, 8, 4, 2 or 1 bytes) that divides the row size and the
// buffers' alignment, so one instantiation per unit serves float16, bfloat16, float32 and
// float64 alike.
//
// Header-free on purpose (no <cstdint>): NVRTC compiles it without include paths, and the CPU
// host harness compiles the very same text with g++ against tests/cuda_host/host_shim.h.

// found[p] = 1 for the row p of the sorted, unique indices[0, k) holding each wanted[t];
// found must start as zeros. Several threads may flag one row (repeated ids): they all store
// the same value, so the outcome does not depend on their order.
__global__ void retain_mark(const long long* __restrict__ indices, long long k,
                            const long long* __restrict__ wanted, long long n,
                            unsigned char* __restrict__ found) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += stride) {
    const long long id = wanted[t];
    long long lo = 0;
    long long hi = k;
    while (lo < hi) {  // first position whose index is >= id
      const long long mid = lo + (hi - lo) / 2;
      if (indices[mid] < id) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    if (lo < k && indices[lo] == id) found[lo] = 1;
  }
}

// dst[r, :] = src[rows[r], :] for r < n_rows, rows of `units` elements of U.
//
// 2^lanes_log2 consecutive threads share a row (a power of two up to the block size, chosen
// on the host from the row width), so narrow rows still keep every thread busy and wide rows
// are read and written by a whole block in coalesced, 16-byte-per-thread transactions.
template <class U>
__global__ void retain_gather(const U* __restrict__ src, const long long* __restrict__ rows,
                              long long n_rows, long long units, int lanes_log2,
                              U* __restrict__ dst) {
  const long long lanes = 1LL << lanes_log2;
  const long long lane = threadIdx.x & (lanes - 1);
  const long long rows_per_block = blockDim.x >> lanes_log2;
  const long long stride = (long long)gridDim.x * rows_per_block;
  for (long long r = blockIdx.x * rows_per_block + (threadIdx.x >> lanes_log2); r < n_rows;
       r += stride) {
    const U* from = src + rows[r] * units;
    U* to = dst + r * units;
    for (long long c = lane; c < units; c += lanes) to[c] = from[c];
  }
}
