// CUDA kernels for bias_leaky_relu and its backward. Tensors are walked as
// flat dense buffers viewed as [outer, C, inner] (csrc/layout.h). The bias
// gradient is reduced in the same pass that writes dx: every block sums the
// dx values it produced into one slot of a partial buffer whose layout keeps
// channels apart, and a tiny sum over that buffer finishes the job. No atomics,
// so results are reproducible. What each thread computes lives in
// bias_leaky_relu_body.cuh, where the CPU emulation in tests/ runs it too.
#include <torch/library.h>

#include "../layout.h"
#include "bias_leaky_relu_body.cuh"
#include "common.cuh"

namespace condgan::cuda {
namespace {

static_assert(kRowChunk == kThreads * 8, "a row chunk is eight elements per thread");

template <typename scalar_t>
__global__ void forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ bias,
                               scalar_t* __restrict__ y, int64_t numel, ChannelOf channel_of,
                               LeakyParams<at::opmath_type<scalar_t>> p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < numel; i += int64_t(blockDim.x) * gridDim.x)
    forward_element(x, bias, y, channel_of, p, i);
}

template <typename scalar_t>
__global__ void grad_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ y,
                            scalar_t* __restrict__ dx, int64_t numel, LeakyParams<at::opmath_type<scalar_t>> p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < numel; i += int64_t(blockDim.x) * gridDim.x)
    grad_element(g, y, dx, p, i);
}

template <typename scalar_t>
__global__ void grad_rows_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ y,
                                 scalar_t* __restrict__ dx, at::opmath_type<scalar_t>* __restrict__ partial,
                                 int64_t inner, int64_t chunks, LeakyParams<at::opmath_type<scalar_t>> p) {
  auto sum = grad_rows_thread(g, y, dx, inner, chunks, p, blockIdx.x, threadIdx.x, blockDim.x);
  sum = block_sum(sum);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// Thread = channel, block row y = a slice of rows.
template <typename scalar_t>
__global__ void grad_channels_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ y,
                                     scalar_t* __restrict__ dx, at::opmath_type<scalar_t>* __restrict__ partial,
                                     int64_t outer, int64_t C, LeakyParams<at::opmath_type<scalar_t>> p) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  partial[blockIdx.y * C + c] = grad_channels_thread(g, y, dx, outer, C, p, c, blockIdx.y, gridDim.y);
}

at::Tensor bias_leaky_relu_cuda(const at::Tensor& x_in, const c10::optional<at::Tensor>& bias,
                                double slope, double gain, int64_t dim) {
  const int64_t d = check_bias_args(x_in, bias, dim);
  const bool has_bias = bias.has_value() && bias->defined();
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = dense(x_in);
  at::Tensor y = at::empty_like(x);
  const int64_t numel = x.numel();
  if (numel == 0) return y;
  const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
  const ChannelLayout L = has_bias ? channel_layout(x, d) : ChannelLayout{1, 1, numel};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_leaky_relu_cuda", [&] {
    forward_kernel<scalar_t><<<blocks_for(numel), kThreads, 0, stream()>>>(
        x.const_data_ptr<scalar_t>(), has_bias ? b.const_data_ptr<scalar_t>() : nullptr,
        y.mutable_data_ptr<scalar_t>(), numel, make_channel_of(L.channels, L.inner, numel),
        leaky_params<at::opmath_type<scalar_t>>(slope, gain));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_cuda(
    const at::Tensor& grad_y, const at::Tensor& y_in, double slope, double gain, int64_t dim, bool bias_grad) {
  TORCH_CHECK(grad_y.sizes() == y_in.sizes(), "bias_leaky_relu_backward: grad and y shapes differ");
  TORCH_CHECK(grad_y.scalar_type() == y_in.scalar_type(), "bias_leaky_relu_backward: grad and y dtypes differ");
  c10::cuda::CUDAGuard guard(y_in.device());
  const int64_t d = bias_grad ? at::maybe_wrap_dim(dim, y_in.dim()) : 0;
  const at::Tensor y = dense(y_in);
  const at::Tensor g = like_layout(grad_y, y);
  at::Tensor dx = at::empty_like(y);
  const int64_t numel = y.numel();
  if (!bias_grad || numel == 0) {
    at::Tensor dbias = bias_grad ? at::zeros({y.size(d)}, y.options()) : at::empty({0}, y.options());
    if (numel == 0) return {dx, dbias};
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "bias_leaky_relu_backward_cuda", [&] {
      grad_kernel<scalar_t><<<blocks_for(numel), kThreads, 0, stream()>>>(
          g.const_data_ptr<scalar_t>(), y.const_data_ptr<scalar_t>(), dx.mutable_data_ptr<scalar_t>(), numel,
          leaky_params<at::opmath_type<scalar_t>>(slope, gain));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return {dx, dbias};
  }
  const ChannelLayout L = channel_layout(y, d);
  const auto acc_dtype = at::toOpMathType(y.scalar_type());
  at::Tensor dbias;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "bias_leaky_relu_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto params = leaky_params<acc_t>(slope, gain);
    if (L.inner > 1 || L.channels == 1) {
      const int64_t chunks = row_chunks(L.inner);
      at::Tensor partial = at::empty({L.outer, L.channels, chunks}, y.options().dtype(acc_dtype));
      grad_rows_kernel<scalar_t><<<static_cast<unsigned>(L.outer * L.channels * chunks), kThreads, 0, stream()>>>(
          g.const_data_ptr<scalar_t>(), y.const_data_ptr<scalar_t>(), dx.mutable_data_ptr<scalar_t>(),
          partial.mutable_data_ptr<acc_t>(), L.inner, chunks, params);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      dbias = partial.sum(at::IntArrayRef{0, 2}).to(y.scalar_type());
    } else {
      const int64_t slices = channel_slices(L.outer);
      at::Tensor partial = at::empty({slices, L.channels}, y.options().dtype(acc_dtype));
      const dim3 grid(static_cast<unsigned>((L.channels + kThreads - 1) / kThreads), static_cast<unsigned>(slices));
      grad_channels_kernel<scalar_t><<<grid, kThreads, 0, stream()>>>(
          g.const_data_ptr<scalar_t>(), y.const_data_ptr<scalar_t>(), dx.mutable_data_ptr<scalar_t>(),
          partial.mutable_data_ptr<acc_t>(), L.outer, L.channels, params);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      dbias = partial.sum(0).to(y.scalar_type());
    }
  });
  return {dx, dbias};
}

}  // namespace
}  // namespace condgan::cuda

TORCH_LIBRARY_IMPL(condgan, CUDA, m) {
  m.impl("bias_leaky_relu", &condgan::cuda::bias_leaky_relu_cuda);
  m.impl("bias_leaky_relu_backward", &condgan::cuda::bias_leaky_relu_backward_cuda);
}
