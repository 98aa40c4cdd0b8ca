// Fused elementwise optimizer steps: one launch updates one float32 tensor in place.
//
// gluonlite/optimizer/ runs each optimizer's update as a handful of NumPy/CuPy operations
// (its _<name>_math function); on a GPU every one of those is a kernel launch and a
// temporary. Here each optimizer is a functor whose apply() does the same arithmetic for
// one element, and optimizer_step<Op> runs it over a tensor in a grid-stride loop (SGD and
// Adam keep the multi-tensor kernels of multi_tensor.cu, which take many tensors per launch).
//
// Arguments: n elements; the weight w and gradient g; up to three state arrays s0, s1, s2 in
// the order of the Python math function (an optimizer with fewer states receives the weight
// in the unused slots and never touches them); lr and wd of this tensor; rescale_grad;
// clip_gradient (negative: no clipping, the Python code's None); h[0..7], the optimizer's own
// scalars as listed in gluonlite/_kernels.py (_OPTIMIZER_KERNELS).
//
// The arithmetic follows the Python functions operation by operation, one float32 rounding
// each, so results agree with the NumPy float32 path up to FMA contraction. Scalars arrive
// rounded to float32 on the host, including those the Python code forms in double before
// NumPy rounds them against a float32 array (1 - beta, coef1 / lr, ...). The gradient is only
// read. Header-free, so NVRTC needs no include paths and the CPU host harness (tests/cuda_host)
// compiles the same text with g++.

__device__ __forceinline__ float glo_clip(float g, float clip_gradient) {
  if (clip_gradient < 0.f) return g;
  return g < -clip_gradient ? -clip_gradient : (g > clip_gradient ? clip_gradient : g);
}

// clip(rescale_grad * grad) + wd * w: MXNet's SGD-family order (wd only when nonzero, as the
// Python code: 0 * inf would turn an infinite weight into NaN).
__device__ __forceinline__ float glo_grad(float grad, float w, float rescale_grad,
                                          float clip_gradient, float wd) {
  float g = glo_clip(grad * rescale_grad, clip_gradient);
  if (wd != 0.f) g = g + wd * w;
  return g;
}

// clip(rescale_grad * grad + wd * w): the Adam-family order.
__device__ __forceinline__ float glo_grad_wd_first(float grad, float w, float rescale_grad,
                                                   float clip_gradient, float wd) {
  float g = grad * rescale_grad;
  if (wd != 0.f) g = g + wd * w;
  return glo_clip(g, clip_gradient);
}

__device__ __forceinline__ float glo_sign(float x) {
  return x > 0.f ? 1.f : (x < 0.f ? -1.f : x);  // NaN and +-0 stay themselves, as NumPy's
}

__device__ __forceinline__ float glo_max(float a, float b) {
  // NumPy's maximum propagates NaN.
  return a != a ? a : (b != b ? b : (a > b ? a : b));
}

// Adam's moments of element i, stored: mean = beta1 * mean + (1 - beta1) * g,
// var = beta2 * var + (1 - beta2) * g * g, with h = {beta1, 1 - beta1, beta2, 1 - beta2}.
__device__ __forceinline__ void glo_moments(long long i, float gi, float* mean, float* var,
                                            const float* h, float* m_out, float* v_out) {
  float m = mean[i] * h[0];
  m = m + h[1] * gi;
  float v = var[i] * h[2];
  v = v + (h[3] * gi) * gi;
  mean[i] = m;
  var[i] = v;
  *m_out = m;
  *v_out = v;
}

#define GLO_APPLY_ARGS                                                                  \
  long long i, float* __restrict__ w, const float* __restrict__ g, float* s0, float* s1, \
      float* s2, float lr, float wd, float rescale_grad, float clip_gradient, const float* h

// NAG: h = {momentum, has_momentum}; s0 momentum.
struct glo_nag {
  __device__ static void apply(GLO_APPLY_ARGS) {
    float gi = glo_grad(g[i], w[i], rescale_grad, clip_gradient, wd) * lr;
    if (h[1] == 0.f) {
      w[i] = w[i] - gi;
      return;
    }
    float m = s0[i] * h[0];
    m = m - gi;
    s0[i] = m;
    w[i] = w[i] + (h[0] * m - gi);
  }
};

// Signum: h = {momentum, 1 - momentum, decay, has_momentum}, decay = 1 - lr * (wd + wd_lh)
// without momentum, 1 - lr * wd_lh with it (1 exactly: no decay); s0 momentum.
struct glo_signum {
  __device__ static void apply(GLO_APPLY_ARGS) {
    if (h[3] == 0.f) {
      const float gi = g[i] * rescale_grad;
      float wi = w[i] * h[2];
      w[i] = wi - lr * glo_sign(gi);
      return;
    }
    const float gi = glo_grad(g[i], w[i], rescale_grad, clip_gradient, wd);
    float m = s0[i] * h[0];
    m = m - h[1] * gi;
    s0[i] = m;
    float wi = w[i];
    if (h[2] != 1.f) wi = wi * h[2];
    w[i] = wi + lr * glo_sign(m);
  }
};

// DCASGD: h = {momentum, lamda, has_momentum}; s0 previous weight, s1 momentum.
struct glo_dcasgd {
  __device__ static void apply(GLO_APPLY_ARGS) {
    const float wi = w[i];
    const float gi = glo_grad(g[i], wi, rescale_grad, clip_gradient, wd);
    float d = gi * gi;
    d = d * (wi - s0[i]);
    d = d * h[1];
    d = d + gi;
    float step;
    if (h[2] == 0.f) {
      step = d * -lr;
    } else {
      float m = s1[i] * h[0];
      m = m - lr * d;
      s1[i] = m;
      step = m;
    }
    s0[i] = wi;
    w[i] = wi + step;
  }
};

// AdamW: h = {beta1, 1 - beta1, beta2, 1 - beta2, epsilon}; s0 mean, s1 var; lr corrected.
struct glo_adamw {
  __device__ static void apply(GLO_APPLY_ARGS) {
    const float wi = w[i];
    const float gi = glo_clip(g[i] * rescale_grad, clip_gradient);
    float m, v;
    glo_moments(i, gi, s0, s1, h, &m, &v);
    float d = m / (sqrtf(v) + h[4]);
    if (wd != 0.f) d = d + wd * wi;
    w[i] = wi - lr * d;
  }
};

// Adamax: h = {beta1, 1 - beta1, beta2}; s0 mean, s1 u; lr divided by 1 - beta1^t.
struct glo_adamax {
  __device__ static void apply(GLO_APPLY_ARGS) {
    const float gi = glo_grad(g[i], w[i], rescale_grad, clip_gradient, wd);
    float m = s0[i] * h[0];
    m = m + h[1] * gi;
    float u = s1[i] * h[2];
    u = glo_max(u, gi < 0.f ? -gi : gi);
    s0[i] = m;
    s1[i] = u;
    w[i] = w[i] - (lr * m) / u;
  }
};

// Nadam: h = {beta1, 1 - beta1, beta2, 1 - beta2, epsilon, coef2, c_mean, c_grad} with
// c_mean = momentum_t_1 / (1 - m_schedule_next), c_grad = (1 - momentum_t) / (1 - m_schedule).
struct glo_nadam {
  __device__ static void apply(GLO_APPLY_ARGS) {
    const float gi = glo_grad(g[i], w[i], rescale_grad, clip_gradient, wd);
    float m, v;
    glo_moments(i, gi, s0, s1, h, &m, &v);
    float bar = h[6] * m;
    bar = bar + h[7] * gi;
    w[i] = w[i] - (lr * bar) / (sqrtf(v / h[5]) + h[4]);
  }
};

// AdaBelief: h = {beta1, 1 - beta1, beta2, 1 - beta2, epsilon}; s0 mean, s1 var.
struct glo_adabelief {
  __device__ static void apply(GLO_APPLY_ARGS) {
    float gi = glo_grad_wd_first(g[i], w[i], rescale_grad, clip_gradient, wd);
    float m = s0[i] * h[0];
    m = m + h[1] * gi;
    gi = gi - m;
    float v = s1[i] * h[2];
    v = v + (h[3] * gi) * gi;
    v = v + h[4];
    s0[i] = m;
    s1[i] = v;
    w[i] = w[i] - (lr * m) / (sqrtf(v) + h[4]);
  }
};

// AdaGrad: h = {epsilon}; s0 history.
struct glo_adagrad {
  __device__ static void apply(GLO_APPLY_ARGS) {
    const float gi = glo_grad(g[i], w[i], rescale_grad, clip_gradient, wd);
    const float hist = s0[i] + gi * gi;
    s0[i] = hist;
    w[i] = w[i] - (lr * gi) / (sqrtf(hist) + h[0]);
  }
};

// AdaDelta: h = {rho, 1 - rho, epsilon}; s0 accumulated g^2, s1 accumulated delta^2.
struct glo_adadelta {
  __device__ static void apply(GLO_APPLY_ARGS) {
    const float gi = glo_grad(g[i], w[i], rescale_grad, clip_gradient, wd);
    float acc_g = s0[i] * h[0];
    acc_g = acc_g + (h[1] * gi) * gi;
    float delta = sqrtf(s1[i] + h[2]);
    delta = delta / sqrtf(acc_g + h[2]);
    delta = delta * gi;
    float acc_d = s1[i] * h[0];
    acc_d = acc_d + (h[1] * delta) * delta;
    s0[i] = acc_g;
    s1[i] = acc_d;
    w[i] = w[i] - lr * delta;
  }
};

// RMSProp: h = {rho, 1 - rho, momentum, epsilon, clip_weights (negative: none), centered};
// s0 var, and when centered s1 mean, s2 momentum.
struct glo_rmsprop {
  __device__ static void apply(GLO_APPLY_ARGS) {
    const float gi = glo_grad(g[i], w[i], rescale_grad, clip_gradient, wd);
    float v = s0[i] * h[0];
    v = v + (h[1] * gi) * gi;
    s0[i] = v;
    float wi = w[i];
    if (h[5] == 0.f) {
      wi = wi - (lr * gi) / (sqrtf(v) + h[3]);
    } else {
      float mean = s1[i] * h[0];
      mean = mean + h[1] * gi;
      s1[i] = mean;
      float mom = s2[i] * h[2];
      mom = mom - (lr * gi) / sqrtf((v - mean * mean) + h[3]);
      s2[i] = mom;
      wi = wi + mom;
    }
    if (h[4] >= 0.f) wi = glo_clip(wi, h[4]);
    w[i] = wi;
  }
};

// Ftrl: h = {lamda1, beta}; s0 z, s1 n.
struct glo_ftrl {
  __device__ static void apply(GLO_APPLY_ARGS) {
    const float wi = w[i];
    const float gi = glo_clip(g[i] * rescale_grad, clip_gradient);
    float sigma = -sqrtf(s1[i]);
    const float n = s1[i] + gi * gi;
    s1[i] = n;
    float denom = sqrtf(n);
    sigma = sigma + denom;
    sigma = sigma / lr;
    const float z = s0[i] + (gi - sigma * wi);
    s0[i] = z;
    denom = denom + h[1];
    denom = denom / lr;
    denom = denom + wd;
    const float az = z < 0.f ? -z : z;
    const float d = glo_sign(z) * glo_max(az - h[0], 0.f);
    w[i] = -d / denom;
  }
};

// FTML: h = {beta1, 1 - beta1, beta2, 1 - beta2, epsilon, coef2, coef1 / lr, -beta1};
// s0 d, s1 v, s2 z.
struct glo_ftml {
  __device__ static void apply(GLO_APPLY_ARGS) {
    const float wi = w[i];
    const float gi = glo_grad(g[i], wi, rescale_grad, clip_gradient, wd);
    float v = s1[i] * h[2];
    v = v + (h[3] * gi) * gi;
    s1[i] = v;
    float sigma = h[7] * s0[i];
    float d = sqrtf(v / h[5]) + h[4];
    d = d * h[6];
    s0[i] = d;
    sigma = sigma + d;
    float z = s2[i] * h[0];
    z = z + h[1] * gi;
    z = z - sigma * wi;
    s2[i] = z;
    w[i] = -z / d;
  }
};

template <class Op>
__global__ void optimizer_step(long long n, float* __restrict__ w, const float* __restrict__ g,
                               float* s0, float* s1, float* s2, float lr, float wd,
                               float rescale_grad, float clip_gradient, float h0, float h1,
                               float h2, float h3, float h4, float h5, float h6, float h7) {
  const float h[8] = {h0, h1, h2, h3, h4, h5, h6, h7};
  const long long stride = (long long)blockDim.x * gridDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    Op::apply(i, w, g, s0, s1, s2, lr, wd, rescale_grad, clip_gradient, h);
  }
}

// SGLD: h = {lr / 2}; s0 the Gaussian noise N(0, sqrt(lr)), drawn on the host by the Python
// code from gluonlite's generator (so that a GPU run consumes the same stream as the NumPy
// path and mx.random.seed reproduces it) and uploaded; only read here.
struct glo_sgld {
  __device__ static void apply(GLO_APPLY_ARGS) {
    const float gi = glo_grad(g[i], w[i], rescale_grad, clip_gradient, wd);
    float wi = w[i] - h[0] * gi;
    w[i] = wi + s0[i];
  }
};

// ---------------------------------------------------------------------------------------
// Layer-wise optimizers (LAMB, LARS, LANS): a few launches per tensor, each a phase.
//
// optimizer_norms<Op> runs Op::norm_terms over the tensor, which may update the weight and
// states and write a scratch array (slot s2), and adds two per-element squares into float32
// running sums; each block reduces its threads' sums in shared memory and writes
// partials[2 * block] and partials[2 * block + 1] (at most a few dozen blocks, see
// _NORM_BLOCKS in gluonlite/_kernels.py). optimizer_layerwise<Op> runs Op::apply
// elementwise. Both take the partial sums of up to two earlier phases (p1 with n1 blocks,
// p2 with n2; n 0: none), which every thread adds up in block order into sums[0..1] (p1)
// and sums[2..3] (p2): the same float32 values in every thread, no atomics, deterministic;
// Op::scale turns them into the scalar the phase passes in the lr slot (lr times a trust
// ratio). LAMB and LARS: norms, then apply (two launches per tensor; LARS on a bias skips
// the norms). LANS: four (see glo_lans_*). The norms accumulate in float32, where the
// Python code sums in float64: results agree up to float32 summation error.

#define GLO_NORM_ARGS                                                                       \
  long long i, float* __restrict__ w, const float* __restrict__ g, float* s0, float* s1,    \
      float* s2, float lr, float wd, float rescale_grad, float clip_gradient, const float* h, \
      const float* sums, float* a, float* b

__device__ __forceinline__ float glo_min(float a, float b) {
  return a != a ? a : (b != b ? b : (a < b ? a : b));  // NaN-propagating, as NumPy's
}

// Whether numerator / denominator is finite and nonzero (MXNet's trust ratio rule).
__device__ __forceinline__ bool glo_ratio_ok(float numerator, float denominator) {
  const float ratio = numerator / denominator;
  return (ratio - ratio == 0.f) && ratio != 0.f;
}

// numerator / denominator, or 1 where that is NaN, infinite or 0.
__device__ __forceinline__ float glo_trust(float numerator, float denominator) {
  return glo_ratio_ok(numerator, denominator) ? numerator / denominator : 1.f;
}

// sqrt(sum_sq) clamped to [lower, upper] (negative: no bound).
__device__ __forceinline__ float glo_clamped_norm(float sum_sq, float lower, float upper) {
  float r = sqrtf(sum_sq);
  if (lower >= 0.f) r = glo_max(r, lower);
  if (upper >= 0.f) r = glo_min(r, upper);
  return r;
}

// Adam's moments of element i from gi (s0 mean, s1 var), then LAMB's update direction
// u = (mean / coef1) / (sqrt(var / coef2) + epsilon) + wd * w, stored in s2 and returned;
// h = {beta1, 1 - beta1, beta2, 1 - beta2, epsilon, coef1, coef2}.
__device__ __forceinline__ float glo_lamb_direction(long long i, float gi, float wi, float wd,
                                                    float* s0, float* s1, float* s2,
                                                    const float* h) {
  float m, v;
  glo_moments(i, gi, s0, s1, h, &m, &v);
  float u = m / h[5];
  u = u / (sqrtf(v / h[6]) + h[4]);
  if (wd != 0.f) u = u + wd * wi;
  s2[i] = u;
  return u;
}

// LAMB. norms: h = {beta1, 1 - beta1, beta2, 1 - beta2, epsilon, coef1, coef2}; s0 mean,
// s1 var, s2 the update u = (mean / coef1) / (sqrt(var / coef2) + epsilon) + wd * w;
// sums ||w||^2 and ||u||^2. apply (p1: the norms): h = {lower_bound, upper_bound};
// w -= lr * trust(clamp(||w||), ||u||) * u.
struct glo_lamb {
  __device__ static void norm_terms(GLO_NORM_ARGS) {
    const float wi = w[i];
    const float gi = glo_clip(g[i] * rescale_grad, clip_gradient);
    const float u = glo_lamb_direction(i, gi, wi, wd, s0, s1, s2, h);
    *a += wi * wi;
    *b += u * u;
  }
  __device__ static float scale(const float* sums, float lr, float wd, const float* h,
                                int n1) {
    if (n1 == 0) return lr;
    return lr * glo_trust(glo_clamped_norm(sums[0], h[0], h[1]), sqrtf(sums[1]));
  }
  __device__ static void apply(GLO_APPLY_ARGS) { w[i] = w[i] - lr * s2[i]; }
};

// LARS. norms: sums ||w||^2 and ||rescale_grad * grad||^2. apply (p1: the norms, or none
// when not layer-wise): h = {eta, epsilon, has_momentum, momentum};
// lr *= eta * ||w|| / (||g|| + wd * ||w|| + epsilon) (1 where ||w|| / ||g|| is NaN, infinite
// or 0), then SGD in _sgd_math's order: g = clip(rescale_grad * grad) + wd * w;
// mom = momentum * mom - lr * g; w += mom (or w -= lr * g); s0 momentum.
struct glo_lars {
  __device__ static void norm_terms(GLO_NORM_ARGS) {
    const float wi = w[i];
    const float gi = g[i] * rescale_grad;
    *a += wi * wi;
    *b += gi * gi;
  }
  __device__ static float scale(const float* sums, float lr, float wd, const float* h,
                                int n1) {
    if (n1 == 0) return lr;
    const float w_norm = sqrtf(sums[0]);
    const float g_norm = sqrtf(sums[1]);
    float lars = h[0] * w_norm;
    lars = lars / ((g_norm + wd * w_norm) + h[1]);
    if (!glo_ratio_ok(w_norm, g_norm)) lars = 1.f;
    return lr * lars;
  }
  __device__ static void apply(GLO_APPLY_ARGS) {
    const float gi = glo_grad(g[i], w[i], rescale_grad, clip_gradient, wd);
    if (h[2] == 0.f) {
      w[i] = w[i] - lr * gi;
      return;
    }
    float m = s0[i] * h[3];
    m = m - lr * gi;
    s0[i] = m;
    w[i] = w[i] + m;
  }
};

// LANS, four phases; s0 mean, s1 var, s2 scratch; gn = ||rescale_grad * grad||,
// gi = clip(rescale_grad * grad / gn), s = sqrt(var / coef2) + epsilon.
// 1, glo_lans_norms: sums ||w||^2 and gn^2.
struct glo_lans_norms {
  __device__ static float scale(const float* sums, float lr, float wd, const float* h,
                                int n1) {
    return lr;
  }
  __device__ static void norm_terms(GLO_NORM_ARGS) {
    const float wi = w[i];
    const float gi = g[i] * rescale_grad;
    *a += wi * wi;
    *b += gi * gi;
  }
};

__device__ __forceinline__ float glo_lans_grad(float grad, float rescale_grad, float gn,
                                               float clip_gradient) {
  return glo_clip((grad * rescale_grad) / gn, clip_gradient);
}

// 2, glo_lans_moments (p1: phase 1): h = {beta1, 1 - beta1, beta2, 1 - beta2, epsilon,
// coef1, coef2}; moments as Adam from gi; s2 = u = (mean / coef1) / s + wd * w; sums ||u||^2.
struct glo_lans_moments {
  __device__ static float scale(const float* sums, float lr, float wd, const float* h,
                                int n1) {
    return sqrtf(sums[1]);  // gn
  }
  __device__ static void norm_terms(GLO_NORM_ARGS) {
    const float gi = glo_lans_grad(g[i], rescale_grad, lr, clip_gradient);
    const float u = glo_lamb_direction(i, gi, w[i], wd, s0, s1, s2, h);
    *a += u * u;
  }
};

// 3, glo_lans_step (p1: phase 1, p2: phase 2): h = {beta1, epsilon, coef2, lower_bound,
// upper_bound}; w -= lr * beta1 * trust(clamp(||w||), ||u||) * u; then s2 = v = gi / s +
// wd * w (the new w); sums ||v||^2. gn is recomputed from p1 in every thread.
struct glo_lans_step {
  __device__ static float scale(const float* sums, float lr, float wd, const float* h,
                                int n1) {
    return (lr * h[0]) * glo_trust(glo_clamped_norm(sums[0], h[3], h[4]), sqrtf(sums[2]));
  }
  __device__ static void norm_terms(GLO_NORM_ARGS) {
    const float gn = sqrtf(sums[1]);
    const float wi = w[i] - lr * s2[i];
    w[i] = wi;
    const float gi = glo_lans_grad(g[i], rescale_grad, gn, clip_gradient);
    float v = gi / (sqrtf(s1[i] / h[2]) + h[1]);
    if (wd != 0.f) v = v + wd * wi;
    s2[i] = v;
    *b += v * v;
  }
};

// 4, glo_lans_finish (p1: phase 1, p2: phase 3): h = {1 - beta1, lower_bound, upper_bound};
// w -= lr * (1 - beta1) * trust(clamp(||w||), ||v||) * v (||w|| from before phase 3).
struct glo_lans_finish {
  __device__ static float scale(const float* sums, float lr, float wd, const float* h,
                                int n1) {
    return (lr * h[0]) * glo_trust(glo_clamped_norm(sums[0], h[1], h[2]), sqrtf(sums[3]));
  }
  __device__ static void apply(GLO_APPLY_ARGS) { w[i] = w[i] - lr * s2[i]; }
};

#define GLO_NORM_THREADS_MAX 1024

// sums[0..1]: the partial sums of p1 (n1 blocks), sums[2..3]: of p2, added in block order.
__device__ __forceinline__ void glo_prior_sums(const float* p1, int n1, const float* p2,
                                               int n2, float* sums) {
  sums[0] = sums[1] = sums[2] = sums[3] = 0.f;
  for (int k = 0; k < n1; ++k) {
    sums[0] += p1[2 * k];
    sums[1] += p1[2 * k + 1];
  }
  for (int k = 0; k < n2; ++k) {
    sums[2] += p2[2 * k];
    sums[3] += p2[2 * k + 1];
  }
}

template <class Op>
__global__ void optimizer_norms(long long n, float* __restrict__ w,
                                const float* __restrict__ g, float* s0, float* s1, float* s2,
                                const float* __restrict__ p1, int n1,
                                const float* __restrict__ p2, int n2, float lr, float wd,
                                float rescale_grad, float clip_gradient, float h0, float h1,
                                float h2, float h3, float h4, float h5, float h6, float h7,
                                float* __restrict__ partials) {
  __shared__ float block_sums[2 * GLO_NORM_THREADS_MAX];
  const float h[8] = {h0, h1, h2, h3, h4, h5, h6, h7};
  float sums[4];
  glo_prior_sums(p1, n1, p2, n2, sums);
  const float scaled_lr = Op::scale(sums, lr, wd, h, n1);
  float a = 0.f, b = 0.f;
  const long long stride = (long long)blockDim.x * gridDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    Op::norm_terms(i, w, g, s0, s1, s2, scaled_lr, wd, rescale_grad, clip_gradient, h, sums,
                   &a, &b);
  }
  block_sums[2 * threadIdx.x] = a;
  block_sums[2 * threadIdx.x + 1] = b;
  __syncthreads();
  if (threadIdx.x == 0) {
    float ta = 0.f, tb = 0.f;
    for (unsigned int k = 0; k < blockDim.x; ++k) {
      ta += block_sums[2 * k];
      tb += block_sums[2 * k + 1];
    }
    partials[2 * blockIdx.x] = ta;
    partials[2 * blockIdx.x + 1] = tb;
  }
}

template <class Op>
__global__ void optimizer_layerwise(long long n, float* __restrict__ w,
                                    const float* __restrict__ g, float* s0, float* s1,
                                    float* s2, const float* __restrict__ p1, int n1,
                                    const float* __restrict__ p2, int n2, float lr, float wd,
                                    float rescale_grad, float clip_gradient, float h0,
                                    float h1, float h2, float h3, float h4, float h5,
                                    float h6, float h7) {
  const float h[8] = {h0, h1, h2, h3, h4, h5, h6, h7};
  float sums[4];
  glo_prior_sums(p1, n1, p2, n2, sums);
  const float scaled_lr = Op::scale(sums, lr, wd, h, n1);
  const long long stride = (long long)blockDim.x * gridDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    Op::apply(i, w, g, s0, s1, s2, scaled_lr, wd, rescale_grad, clip_gradient, h);
  }
}
