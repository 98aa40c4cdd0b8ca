// Dropout keep-mask from a counter-based generator, computed on the device that holds the data.
//
// Element i of the mask (row-major over the mask's shape) gets the 32-bit word
//   word(key, i) = Philox4x32-10(counter = (lo32(i / 4), hi32(i / 4), 0, 0),
//                                key = (lo32(key), hi32(key)))[i % 4]
// and is kept when word >= threshold (threshold = round(p * 2^32), chosen on the host).
// The word depends on nothing but (key, i): no generator state, no launch geometry, no thread
// order. gluonlite/_philox.py computes the same words with NumPy for cpu devices, so one key
// gives bit-identical masks on every device, and nothing but the key and two scalars travels
// from host to device per call.
//
// Philox4x32-10 is the generator of Salmon, Moraes, Dror and Shaw, "Parallel random numbers:
// as easy as 1, 2, 3" (SC 2011), written here from the published algorithm; the tests check it
// against the known-answer vectors of the Random123 distribution.
//
// The mask holds only two values, +0 and scale, and +0 is the all-zero bit pattern in every
// IEEE-style format, so the kernel never does floating-point arithmetic: it stores raw bits of
// the storage type's width (U = unsigned short for float16/bfloat16, unsigned int for float32,
// unsigned long long for float64), with scale's bits computed on the host. One instantiation
// per width serves every dtype of that width and needs no conversion helpers.
//
// Header-free on purpose (no <cstdint>, no __umulhi): NVRTC compiles it without include paths
// and the CPU host harness (tests/cuda_host/) compiles the same text with g++.

// Round multipliers and key-schedule (Weyl) increments of Philox4x32, from the paper.
#define GL_PHILOX_M0 0xD2511F53u
#define GL_PHILOX_M1 0xCD9E8D57u
#define GL_PHILOX_W0 0x9E3779B9u
#define GL_PHILOX_W1 0xBB67AE85u

// Philox4x32-10 of counter c (in place) under key (k0, k1). Each round multiplies two counter
// words into 64-bit products and mixes their halves with the other two words and the round
// key; the key advances by the Weyl increments between rounds. The portable 64-bit product
// compiles to the same wide multiply on the GPU that __umulhi (which g++ lacks) would.
__device__ __forceinline__ void gl_philox4x32_10(unsigned int c[4], unsigned int k0,
                                                 unsigned int k1) {
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += GL_PHILOX_W0;  // wraps modulo 2^32, as the algorithm requires
      k1 += GL_PHILOX_W1;
    }
    const unsigned long long p0 = (unsigned long long)GL_PHILOX_M0 * c[0];
    const unsigned long long p1 = (unsigned long long)GL_PHILOX_M1 * c[2];
    const unsigned int hi0 = (unsigned int)(p0 >> 32);
    const unsigned int hi1 = (unsigned int)(p1 >> 32);
    const unsigned int n0 = hi1 ^ c[1] ^ k0;
    const unsigned int n2 = hi0 ^ c[3] ^ k1;
    c[1] = (unsigned int)p1;
    c[3] = (unsigned int)p0;
    c[0] = n0;
    c[2] = n2;
  }
}

// mask[i] = word(key, i) >= threshold ? scale : +0 for i < n, as raw bits of width U
// (scale_bits holds the storage type's bits of 1/(1-p) in its low bytes).
//
// One thread per Philox block of four consecutive elements, in a grid-stride loop with 64-bit
// indices, so one launch of at most a few thousand blocks covers any size. A thread writes its
// four neighbouring elements, so a warp still stores one contiguous span.
template <class U>
__global__ void dropout_mask(long long n, unsigned long long key, unsigned int threshold,
                             unsigned long long scale_bits, U* __restrict__ mask) {
  const U scale = (U)scale_bits;
  const unsigned int k0 = (unsigned int)key;
  const unsigned int k1 = (unsigned int)(key >> 32);
  const long long groups = n / 4 + (n % 4 != 0);
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x; g < groups;
       g += stride) {
    unsigned int word[4] = {(unsigned int)g, (unsigned int)((unsigned long long)g >> 32), 0u,
                            0u};
    gl_philox4x32_10(word, k0, k1);
    const long long first = g * 4;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (first + j < n) mask[first + j] = word[j] >= threshold ? scale : (U)0;
    }
  }
}
