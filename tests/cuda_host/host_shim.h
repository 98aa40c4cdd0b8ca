// CUDA built-ins for running gluonlite's kernels on the CPU, one fiber per CUDA thread.
//
// Included in front of an unchanged kernels/*.cu source. Blocks run one after another, each
// on a fresh OS thread with its __shared__ memory poisoned; inside a block every CUDA thread
// is a ucontext fiber with its own guarded stack, so __syncthreads() can park a thread and
// the scheduler can check that every live thread of the block reached the *same* barrier
// before releasing it (a GPU would hang or corrupt silently; here the launch fails with a
// message). __CUDA_ARCH__ stays undefined: kernels take their portable branch under this shim.
//
// Not emulated, because gluonlite's kernels do not use them: warp shuffles/votes, dynamic
// (extern) shared memory (a launch asking for it is refused), cooperative groups. Not
// detected: misaligned vector accesses inside a kernel, register or occupancy limits, FMA
// contraction differences (tests use tolerances).
#pragma once

#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define GL_SHIM_ASAN 1
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Block-scope thread_local has static storage: all fibers of a block (one OS thread) see one
// copy, which is what __shared__ means within a block.
#define __shared__ thread_local

struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};
// The vector type the kernels use, with CUDA's size and alignment.
struct alignas(16) uint4 {
  unsigned int x, y, z, w;
};

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

inline float __uint_as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline unsigned int __float_as_uint(float f) {
  unsigned int u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// Atomics. Blocks run on one OS thread today, but these stay real atomics so that a future
// multi-threaded block runner cannot turn a racy kernel into a passing test.
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
inline float atomicAdd(float* p, float v) {
  unsigned int* u = reinterpret_cast<unsigned int*>(p);
  unsigned int old = __atomic_load_n(u, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(u, &old, __float_as_uint(__uint_as_float(old) + v), false,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return __uint_as_float(old);
}
inline int atomicMax(int* p, int v) {
  int old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old < v &&
         !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline int atomicCAS(int* p, int expected, int desired) {
  __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return expected;
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long expected,
                                    unsigned long long desired) {
  __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return expected;
}
inline int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }

namespace gl_shim {

enum class State { kRunnable, kAtBarrier, kDone };

struct Fiber {
  ucontext_t ctx;
  char* stack = nullptr;  // usable stack, above a PROT_NONE guard page
  size_t stack_size = 0;
  State state = State::kRunnable;
  const char* file = nullptr;  // barrier the fiber waits at
  int line = 0;
  uint3 tid{0, 0, 0};
  void* asan_fake_stack = nullptr;
};

using Invoker = void (*)(void**);

struct Block {
  std::vector<Fiber> fibers;
  ucontext_t scheduler;
  Fiber* current = nullptr;
  Invoker invoke = nullptr;
  void** args = nullptr;
  const void* scheduler_stack_bottom = nullptr;
  size_t scheduler_stack_size = 0;
  void* scheduler_fake_stack = nullptr;
};

inline thread_local Block* g_block = nullptr;
// Launches are serialised (g_launch_mutex), so one error slot serves them all.
inline std::string g_error;
inline std::mutex g_launch_mutex;

#if defined(GL_SHIM_ASAN)
// Larger for ASan's redzones, but small: ASan clears a stack's shadow at every swapcontext.
constexpr size_t kStackSize = 128 * 1024;
#else
constexpr size_t kStackSize = 64 * 1024;
#endif

// Switches keep ASan's idea of the current stack right; without the annotations it reports
// false stack-buffer-overflows after swapcontext.
inline void switch_to_fiber(Block* b, Fiber* f) {
  b->current = f;
  threadIdx = f->tid;
#if defined(GL_SHIM_ASAN)
  __sanitizer_start_switch_fiber(&b->scheduler_fake_stack, f->stack, f->stack_size);
#endif
  swapcontext(&b->scheduler, &f->ctx);
#if defined(GL_SHIM_ASAN)
  __sanitizer_finish_switch_fiber(b->scheduler_fake_stack, nullptr, nullptr);
#endif
}

inline void switch_to_scheduler(Block* b, Fiber* f, bool dying) {
#if defined(GL_SHIM_ASAN)
  __sanitizer_start_switch_fiber(dying ? nullptr : &f->asan_fake_stack,
                                 b->scheduler_stack_bottom, b->scheduler_stack_size);
#else
  (void)dying;
#endif
  swapcontext(&f->ctx, &b->scheduler);
#if defined(GL_SHIM_ASAN)
  __sanitizer_finish_switch_fiber(f->asan_fake_stack, nullptr, nullptr);
#endif
}

inline void fiber_main() {
  Block* b = g_block;
  Fiber* f = b->current;
#if defined(GL_SHIM_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &b->scheduler_stack_bottom, &b->scheduler_stack_size);
#endif
  b->invoke(b->args);
  f->state = State::kDone;
  switch_to_scheduler(b, f, true);
}

inline void barrier(const char* file, int line) {
  Block* b = g_block;
  Fiber* f = b->current;
  f->state = State::kAtBarrier;
  f->file = file;
  f->line = line;
  switch_to_scheduler(b, f, false);
}

inline std::string where(const Fiber& f) {
  return "thread (" + std::to_string(f.tid.x) + "," + std::to_string(f.tid.y) + "," +
         std::to_string(f.tid.z) + ")";
}
inline std::string where(const uint3& b) {
  return "block (" + std::to_string(b.x) + "," + std::to_string(b.y) + "," +
         std::to_string(b.z) + ")";
}

// Order in which runnable threads (and blocks) are visited: 0 forward, 1 reverse,
// 2 shuffled afresh at every barrier release.
inline void arrange(std::vector<size_t>& order, int policy, std::mt19937_64& rng) {
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (policy == 1) std::reverse(order.begin(), order.end());
  if (policy == 2) std::shuffle(order.begin(), order.end(), rng);
}

// Decide what happens when no fiber can run: release a barrier, finish, or fail.
// Returns 1 to release, 0 when the block is done, -1 on error (g_error set).
inline int settle(const Block& b) {
  const Fiber* waiting = nullptr;
  const Fiber* exited = nullptr;
  for (const Fiber& f : b.fibers) {
    if (f.state == State::kDone) {
      exited = exited ? exited : &f;
      continue;
    }
    if (waiting == nullptr) {
      waiting = &f;
    } else if (f.line != waiting->line || std::strcmp(f.file, waiting->file) != 0) {
      g_error = "barrier divergence in " + where(blockIdx) + ": " + where(*waiting) +
                " waits at " + waiting->file + ":" + std::to_string(waiting->line) + ", " +
                where(f) + " at " + f.file + ":" + std::to_string(f.line);
      return -1;
    }
  }
  if (waiting == nullptr) return 0;
  if (exited != nullptr) {
    g_error = "deadlock in " + where(blockIdx) + ": " + where(*waiting) + " waits at " +
              waiting->file + ":" + std::to_string(waiting->line) + " but " + where(*exited) +
              " has already exited";
    return -1;
  }
  return 1;
}

inline int run_block(Block& b, int policy, std::mt19937_64& rng) {
  std::vector<size_t> order(b.fibers.size());
  arrange(order, policy, rng);
  for (;;) {
    for (size_t i : order) {
      Fiber& f = b.fibers[i];
      if (f.state == State::kRunnable) switch_to_fiber(&b, &f);
    }
    int verdict = settle(b);
    if (verdict <= 0) return verdict;
    for (Fiber& f : b.fibers) f.state = State::kRunnable;
    if (policy == 2) arrange(order, policy, rng);
  }
}

struct Stacks {
  std::vector<char*> maps;
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  ~Stacks() {
    for (char* m : maps) munmap(m, kStackSize + page);
  }
  // A stack whose lowest page is PROT_NONE, so that an overflow faults instead of writing
  // into the neighbouring thread's stack.
  char* make() {
    void* m = mmap(nullptr, kStackSize + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    mprotect(m, page, PROT_NONE);
    maps.push_back(static_cast<char*>(m));
    return static_cast<char*>(m) + page;
  }
};

// __shared__ variables are thread_local, so they live in this library's TLS block, which a
// fresh thread gets zero-filled. Fill it with 0xFF bytes instead (NaN as float, -1 as
// integer), so that reading shared memory no thread of the block wrote gives NaN, as the
// outputs do. The shim's own thread_locals live there too and are set again afterwards.
inline int poison_tls_callback(dl_phdr_info* info, size_t, void* self_name) {
  if (info->dlpi_name == nullptr || std::strcmp(info->dlpi_name, (const char*)self_name) != 0)
    return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    if (info->dlpi_phdr[i].p_type == PT_TLS && info->dlpi_tls_data != nullptr) {
      std::memset(info->dlpi_tls_data, 0xFF, info->dlpi_phdr[i].p_memsz);
      return 1;
    }
  }
  return 0;
}

// Returns false when the TLS block could not be found (then shared memory starts zeroed).
inline bool poison_shared_memory() {
  g_block = nullptr;  // make sure this thread's TLS block for the library is allocated
  Dl_info self;
  if (dladdr(reinterpret_cast<void*>(&poison_shared_memory), &self) == 0) return false;
  return dl_iterate_phdr(poison_tls_callback, const_cast<char*>(self.dli_fname)) == 1;
}

// Kept out of line: getcontext returns twice, which would make GCC distrust the caller's
// locals (-Wclobbered).
__attribute__((noinline)) inline void prepare(Fiber& f) {
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = f.stack_size;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, fiber_main, 0);
}

inline int launch(Invoker invoke, dim3 grid, dim3 block, size_t shared_mem, void** args,
                  int policy, unsigned long long seed) {
  std::lock_guard<std::mutex> lock(g_launch_mutex);
  g_error.clear();
  // CUDA's launch limits (compute capability 8.x/9.x); a GPU rejects these launches.
  unsigned long long threads = 1ULL * block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0) {
    g_error = "invalid launch: zero-sized grid or block";
    return -1;
  }
  if (threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64) {
    g_error = "invalid launch: " + std::to_string(threads) +
              " threads per block (at most 1024; z at most 64)";
    return -1;
  }
  if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    g_error = "invalid launch: grid dimensions out of range";
    return -1;
  }
  if (shared_mem != 0) {
    // Kernels use static __shared__ only; the shim does not emulate extern __shared__.
    g_error = "invalid launch: dynamic shared memory is not emulated by the host shim";
    return -1;
  }
  if (policy < 0 || policy > 2) {
    g_error = "invalid thread order policy";
    return -1;
  }
  std::mt19937_64 rng(seed);
  Stacks stacks;
  Block b;
  b.invoke = invoke;
  b.args = args;
  b.fibers.resize(threads);
  for (Fiber& f : b.fibers) {
    f.stack = stacks.make();
    f.stack_size = kStackSize;
    if (f.stack == nullptr) {
      g_error = "could not map a fiber stack";
      return -1;
    }
  }
  std::vector<size_t> blocks(1ULL * grid.x * grid.y * grid.z);
  arrange(blocks, policy, rng);
  int rc = 0;
  for (size_t linear : blocks) {
    // Each block runs on a fresh OS thread, its __shared__ (thread_local) variables poisoned:
    // never the previous block's or launch's values, which could make a missing write or
    // barrier look correct.
    std::thread worker([&] {
      if (!poison_shared_memory()) {
        g_error = "could not locate the shim's thread-local storage to poison __shared__";
        rc = -1;
        return;
      }
      g_block = &b;
      gridDim = grid;
      blockDim = block;
      blockIdx = uint3{static_cast<unsigned>(linear % grid.x),
                       static_cast<unsigned>(linear / grid.x % grid.y),
                       static_cast<unsigned>(linear / grid.x / grid.y)};
      for (size_t t = 0; t < b.fibers.size(); ++t) {
        Fiber& f = b.fibers[t];
        f.state = State::kRunnable;
        f.file = nullptr;
        f.line = 0;
        f.tid = uint3{static_cast<unsigned>(t % block.x),
                      static_cast<unsigned>(t / block.x % block.y),
                      static_cast<unsigned>(t / block.x / block.y)};
        prepare(f);
      }
      rc = run_block(b, policy, rng);
    });
    worker.join();
    if (rc != 0) break;
  }
  return rc;
}

// The C++ spelling of a parameter type, e.g. "const float*", as GCC prints it.
template <class T>
const char* type_name_raw() {
  return __PRETTY_FUNCTION__;
}
template <class T>
std::string type_name() {
  std::string s = type_name_raw<T>();
  size_t at = s.find("T = ");
  size_t end = s.find_first_of(";]", at);
  return s.substr(at + 4, end - at - 4);
}

template <class... P, size_t... I>
void call(void (*kernel)(P...), void** args, std::index_sequence<I...>) {
  kernel(*static_cast<std::remove_reference_t<P>*>(args[I])...);
}
template <class... P>
constexpr size_t arity(void (*)(P...)) {
  return sizeof...(P);
}
template <auto Kernel>
void invoke(void** args) {
  call(Kernel, args, std::make_index_sequence<arity(Kernel)>{});
}
template <class... P>
std::string signature(void (*)(P...)) {
  std::string s;
  ((s += (s.empty() ? "" : ";") + type_name<P>()), ...);
  return s;
}

struct Entry {
  const char* name;
  Invoker invoke;
  std::string (*signature)();
};

template <auto Kernel>
std::string signature_of() {
  return signature(Kernel);
}

// Defined by the generated translation unit (GL_SHIM_EXPORT entries).
extern const Entry kTable[];
extern const int kTableSize;

}  // namespace gl_shim

// The C interface the Python launcher (tests/cuda_host/harness.py) loads through ctypes; the
// only symbols the library exports (it is built with -fvisibility=hidden).
#pragma GCC visibility push(default)
extern "C" {
int gl_kernel_count() { return gl_shim::kTableSize; }
const char* gl_kernel_name(int i) { return gl_shim::kTable[i].name; }
const char* gl_kernel_signature(int i) {
  static std::vector<std::string> cache(gl_shim::kTableSize);
  if (cache[i].empty()) cache[i] = gl_shim::kTable[i].signature();
  return cache[i].c_str();
}
// Valid until the next launch.
const char* gl_last_error() { return gl_shim::g_error.c_str(); }
int gl_launch(int i, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
              unsigned bz, size_t shared_mem, void** args, int policy, unsigned long long seed) {
  return gl_shim::launch(gl_shim::kTable[i].invoke, dim3{gx, gy, gz}, dim3{bx, by, bz},
                         shared_mem, args, policy, seed);
}
}
#pragma GCC visibility pop

#define __syncthreads() ::gl_shim::barrier(__FILE__, __LINE__)

// The harness's generated translation unit lists the kernels to export:
//   GL_SHIM_EXPORT("name expression", kernel<template, args>)
#define GL_SHIM_EXPORT(name, ...) \
  {name, &::gl_shim::invoke<&__VA_ARGS__>, &::gl_shim::signature_of<&__VA_ARGS__>}
