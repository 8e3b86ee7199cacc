// Per-thread bodies of the CUDA bias_leaky_relu kernels, written so they also
// compile as plain C++: bias_leaky_relu_cuda.cu calls them from its kernels,
// and tests/cuda_emulation/ runs the very same bodies on the CPU (one block's
// threads one after another, their sums added in place of the block-wide
// reduction), which checks the index arithmetic and the layout of the
// bias-gradient partial sums on machines without a GPU.
//
// Tensors are walked as flat dense buffers viewed as [outer, C, inner]
// (csrc/layout.h).
#pragma once
#include <ATen/OpMathType.h>
#include <ATen/cuda/detail/IntegerDivider.cuh>

#include <algorithm>
#include <cstdint>

#include "leaky_params.cuh"

namespace condgan::cuda {

// Elements per block in the row-layout reduction (256 threads x 8).
constexpr int64_t kRowChunk = 2048;
// Most row slices in the channel-layout reduction.
constexpr int64_t kMaxChannelSlices = 1024;

// Channel of the element at memory offset i: (i / inner) % C, by
// multiplication (torch's IntDivider) when every offset fits in 31 bits.
struct ChannelOf {
  int64_t C, inner;
  bool small_index;
  at::cuda::detail::IntDivider<unsigned int> div_inner, div_c;
  CONDGAN_HD int64_t operator()(int64_t i) const {
    if (small_index) return static_cast<int64_t>(div_c.mod(div_inner.div(static_cast<unsigned int>(i))));
    return (i / inner) % C;
  }
};

// allow_small_index=false forces plain division (the emulation tests use it).
inline ChannelOf make_channel_of(int64_t C, int64_t inner, int64_t numel, bool allow_small_index = true) {
  ChannelOf f{C, inner, false, {}, {}};
  const int64_t limit = INT32_MAX;
  if (allow_small_index && numel <= limit && C >= 1 && inner >= 1) {
    f.small_index = true;
    f.div_inner = at::cuda::detail::IntDivider<unsigned int>(static_cast<unsigned int>(inner));
    f.div_c = at::cuda::detail::IntDivider<unsigned int>(static_cast<unsigned int>(C));
  }
  return f;
}

template <typename scalar_t>
CONDGAN_HD void forward_element(const scalar_t* x, const scalar_t* bias, scalar_t* y, const ChannelOf& channel_of,
                                LeakyParams<at::opmath_type<scalar_t>> p, int64_t i) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t b = bias != nullptr ? acc_t(bias[channel_of(i)]) : acc_t(0);
  y[i] = scalar_t(p.act(acc_t(x[i]) + b));
}

// Writes dx[i] and returns it in the compute type.
template <typename scalar_t>
CONDGAN_HD at::opmath_type<scalar_t> grad_element(const scalar_t* g, const scalar_t* y, scalar_t* dx,
                                                  LeakyParams<at::opmath_type<scalar_t>> p, int64_t i) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t d = p.grad(acc_t(g[i]), acc_t(y[i]));
  dx[i] = scalar_t(d);
  return d;
}

// Row layout (inner > 1): block t covers chunk t % chunks of row t / chunks
// (row = one (outer, channel) pair); thread `lane` of `lanes` takes every
// lanes-th element of the chunk and returns the sum of what it wrote.
inline int64_t row_chunks(int64_t inner) { return (inner + kRowChunk - 1) / kRowChunk; }

template <typename scalar_t>
CONDGAN_HD at::opmath_type<scalar_t> grad_rows_thread(const scalar_t* g, const scalar_t* y, scalar_t* dx,
                                                      int64_t inner, int64_t chunks,
                                                      LeakyParams<at::opmath_type<scalar_t>> p, int64_t t,
                                                      int64_t lane, int64_t lanes) {
  const int64_t row = t / chunks;
  const int64_t start = row * inner + (t % chunks) * kRowChunk;
  const int64_t row_end = (row + 1) * inner;
  const int64_t stop = start + kRowChunk < row_end ? start + kRowChunk : row_end;
  at::opmath_type<scalar_t> sum = 0;
  for (int64_t i = start + lane; i < stop; i += lanes) sum += grad_element(g, y, dx, p, i);
  return sum;
}

// Channel layout (inner == 1): the thread of channel c in slice s takes rows
// s, s + slices, ... and returns the sum of what it wrote.
inline int64_t channel_slices(int64_t outer) { return std::min<int64_t>(outer, kMaxChannelSlices); }

template <typename scalar_t>
CONDGAN_HD at::opmath_type<scalar_t> grad_channels_thread(const scalar_t* g, const scalar_t* y, scalar_t* dx,
                                                          int64_t outer, int64_t C,
                                                          LeakyParams<at::opmath_type<scalar_t>> p, int64_t c,
                                                          int64_t s, int64_t slices) {
  at::opmath_type<scalar_t> sum = 0;
  for (int64_t r = s; r < outer; r += slices) sum += grad_element(g, y, dx, p, r * C + c);
  return sum;
}

}  // namespace condgan::cuda
