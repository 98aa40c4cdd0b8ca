// Fused optimizer steps: one launch updates a whole list of float32 tensors in place.
//
// The multi-tensor path of gluonlite/optimizer.py otherwise runs each update as a handful of
// elementwise operations over concatenated buckets and copies the results back tensor by
// tensor: on a GPU, every one of those is a kernel launch, and a model of many small
// parameters pays hundreds of launches per step. Here the host side (_kernels.py) passes
// device tables instead:
//   ptrs[a * n_tensors + t]  address of array a of tensor t: a = 0 weight, 1 gradient, then
//                            the states (2 momentum for SGD; 2 mean, 3 variance for Adam);
//   sizes[t], lrs[t], wds[t] element count, learning rate and weight decay of tensor t;
//   chunk_tensor[c], chunk_start[c]  chunk c covers elements [chunk_start, chunk_start +
//                            chunk_size) of tensor chunk_tensor[c], cut short at its end.
// Blocks take chunks in a grid-stride loop, and a block's threads stride through its chunk,
// so consecutive threads touch consecutive elements (coalesced) and one launch of at most a
// few thousand blocks covers any number and size of tensors.
//
// The arithmetic is MXNet's, as gluonlite/optimizer.py writes it (_sgd_math, _adam_math), one
// float32 rounding per operation in the same order, so that results agree with the NumPy
// reference up to FMA contraction (which nvcc may apply to a * b + c). Scalars arrive already
// rounded to float32 on the host, as NumPy rounds a Python float against a float32 array;
// (1 - beta) is computed in double there for the same reason. A negative clip_gradient means
// no clipping (the Python code's None). The gradient is only read: the Python path works on a
// fresh copy, and callers may reuse the gradient after the step.
//
// Header-free on purpose: NVRTC compiles it without include paths, and the CPU host harness
// (tests/cuda_host/) compiles the same text with g++.

// g clipped to [-clip_gradient, clip_gradient], or unchanged for a negative clip_gradient.
// Comparisons rather than fminf/fmaxf, so that a NaN gradient stays NaN as in NumPy's clip.
__device__ __forceinline__ float gl_clip(float g, float clip_gradient) {
  if (clip_gradient < 0.f) return g;
  return g < -clip_gradient ? -clip_gradient : (g > clip_gradient ? clip_gradient : g);
}

// SGD, MXNet's sgd_update (kMomentum false) and sgd_mom_update (true): per element,
//   g = clip(rescale_grad * grad) (+ wd * w);  w -= lr * g
// or with momentum
//   m = momentum * m - lr * g;  w += m.
// Clipping comes before weight decay in MXNet's SGD (unlike Adam).
template <bool kMomentum>
__global__ void multi_tensor_sgd(const unsigned long long* __restrict__ ptrs, int n_tensors,
                                 const long long* __restrict__ sizes,
                                 const float* __restrict__ lrs, const float* __restrict__ wds,
                                 const long long* __restrict__ chunk_tensor,
                                 const long long* __restrict__ chunk_start, int n_chunks,
                                 int chunk_size, float momentum, float rescale_grad,
                                 float clip_gradient) {
  for (int c = blockIdx.x; c < n_chunks; c += gridDim.x) {
    const int t = (int)chunk_tensor[c];
    float* w = reinterpret_cast<float*>(ptrs[t]);
    const float* grad = reinterpret_cast<const float*>(ptrs[n_tensors + t]);
    float* mom = kMomentum ? reinterpret_cast<float*>(ptrs[2 * n_tensors + t]) : nullptr;
    const float lr = lrs[t];
    const float wd = wds[t];
    const long long start = chunk_start[c];
    const long long end = start + chunk_size < sizes[t] ? start + chunk_size : sizes[t];
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
      float g = gl_clip(grad[i] * rescale_grad, clip_gradient);
      const float wi = w[i];
      // Python adds wd * w only for wd != 0: 0 * w would turn an inf weight into NaN.
      if (wd != 0.f) g = g + wd * wi;
      if (kMomentum) {
        float m = mom[i] * momentum;
        m = m - lr * g;
        mom[i] = m;
        w[i] = wi + m;
      } else {
        w[i] = wi - lr * g;
      }
    }
  }
}

// Adam, MXNet's adam_update with the bias correction already folded into lrs[t] (see
// _bias_corrected_lr): per element,
//   g = clip(rescale_grad * grad + wd * w)
//   mean = beta1 * mean + (1 - beta1) * g;  var = beta2 * var + (1 - beta2) * g * g
//   w -= lr * mean / (sqrt(var) + epsilon).
// Weight decay comes before clipping in MXNet's Adam (unlike SGD).
__global__ void multi_tensor_adam(const unsigned long long* __restrict__ ptrs, int n_tensors,
                                  const long long* __restrict__ sizes,
                                  const float* __restrict__ lrs, const float* __restrict__ wds,
                                  const long long* __restrict__ chunk_tensor,
                                  const long long* __restrict__ chunk_start, int n_chunks,
                                  int chunk_size, float beta1, float one_minus_beta1,
                                  float beta2, float one_minus_beta2, float epsilon,
                                  float rescale_grad, float clip_gradient) {
  for (int c = blockIdx.x; c < n_chunks; c += gridDim.x) {
    const int t = (int)chunk_tensor[c];
    float* w = reinterpret_cast<float*>(ptrs[t]);
    const float* grad = reinterpret_cast<const float*>(ptrs[n_tensors + t]);
    float* mean = reinterpret_cast<float*>(ptrs[2 * n_tensors + t]);
    float* var = reinterpret_cast<float*>(ptrs[3 * n_tensors + t]);
    const float lr = lrs[t];
    const float wd = wds[t];
    const long long start = chunk_start[c];
    const long long end = start + chunk_size < sizes[t] ? start + chunk_size : sizes[t];
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
      const float wi = w[i];
      float g = grad[i] * rescale_grad;
      if (wd != 0.f) g = g + wd * wi;
      g = gl_clip(g, clip_gradient);
      float m = mean[i] * beta1;
      m = m + one_minus_beta1 * g;
      float v = var[i] * beta2;
      v = v + (one_minus_beta2 * g) * g;
      mean[i] = m;
      var[i] = v;
      w[i] = wi - (lr * m) / (sqrtf(v) + epsilon);
    }
  }
}
