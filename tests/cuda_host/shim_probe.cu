// Kernels that probe the host shim itself (tests/cuda_host/test_shim.py): each one is either
// correct CUDA whose result the shim must reproduce, or a bug the shim must report.

// out[t] = in[t - 1] through shared memory; correct only with the barrier.
__global__ void probe_shift(const float* in, float* out, int use_barrier) {
  __shared__ float slot[64];
  const int t = threadIdx.x;
  slot[t] = in[blockIdx.x * 64 + t];
  if (use_barrier) __syncthreads();
  out[blockIdx.x * 64 + t] = t > 0 ? slot[t - 1] : 0.0f;
}

// Threads below `split` wait at one barrier, the others at another.
__global__ void probe_divergent(int split, int* out) {
  if ((int)threadIdx.x < split) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

// Thread 0 leaves before the barrier the others wait at.
__global__ void probe_early_exit(int* out) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

// Every thread of the grid adds into shared counters; the totals are order-independent.
__global__ void probe_atomics(int* count, float* sum, unsigned long long* wide, int* highest,
                              int* swapped, int* last) {
  const int g = blockIdx.x * blockDim.x * blockDim.y + threadIdx.y * blockDim.x + threadIdx.x;
  atomicAdd(count, 1);
  atomicAdd(sum, 0.5f);
  atomicAdd(wide, 1ULL << 33);
  atomicMax(highest, g);
  atomicCAS(swapped, 0, g + 1);  // exactly one thread wins
  atomicExch(last, g);
}

// Echoes its scalar arguments, so the argument marshalling can be checked bit for bit.
__global__ void probe_arguments(int i, long long l, float f, double d, const float* in,
                                double* out) {
  out[0] = i;
  out[1] = (double)l;
  out[2] = f;
  out[3] = d;
  out[4] = in[0];
  out[5] = blockDim.x * 100 + gridDim.y;
}

// Reads a shared slot that no thread wrote: the shim must hand out poison (NaN), as a GPU
// would hand out garbage.
__global__ void probe_unwritten_shared(float* out) {
  __shared__ float slot[32];
  if (threadIdx.x % 2 == 0) slot[threadIdx.x] = 1.0f;
  __syncthreads();
  out[blockIdx.x * 32 + threadIdx.x] = slot[threadIdx.x];
}
