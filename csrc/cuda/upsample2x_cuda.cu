// CUDA kernels for upsample2x, its adjoint, and the fused
// upsample2x_bias_leaky_relu. One thread per low-resolution element, in a
// grid-stride loop: the forward writes the element's 2x2 outputs, the
// backward gathers its gradient from the 4 or 16 clamped taps, so no atomics
// are needed. The per-element bodies live in upsample2x_body.cuh, where the
// CPU emulation in tests/ runs them too.
#include <torch/library.h>

#include "../layout.h"
#include "common.cuh"
#include "upsample2x_body.cuh"

namespace condgan::cuda {
namespace {

template <typename scalar_t, bool kActivate>
__global__ void forward_kernel(Source<scalar_t, kActivate> src, scalar_t* __restrict__ y, scalar_t* __restrict__ act,
                               Geometry g, bool bilinear) {
  const int64_t numel = g.low_numel();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < numel; i += int64_t(blockDim.x) * gridDim.x)
    forward_element<scalar_t, kActivate>(src, y, act, g, bilinear, i);
}

template <typename scalar_t>
__global__ void backward_kernel(const scalar_t* __restrict__ gy, const scalar_t* __restrict__ act,
                                scalar_t* __restrict__ dx, Geometry g, bool bilinear,
                                LeakyParams<at::opmath_type<scalar_t>> p) {
  const int64_t numel = g.low_numel();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < numel; i += int64_t(blockDim.x) * gridDim.x)
    backward_element<scalar_t>(gy, act, dx, g, bilinear, p, i);
}

at::Tensor low_res_layout(const at::Tensor& t) { return is_channels_last(t) ? t : t.contiguous(); }

Geometry geometry_of(const at::Tensor& low) {
  return make_geometry(low.size(0), low.size(1), low.size(2), low.size(3), is_channels_last(low));
}

at::MemoryFormat format_of(const Geometry& g) {
  return g.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

template <bool kActivate>
std::tuple<at::Tensor, at::Tensor> forward(const at::Tensor& x_in, const c10::optional<at::Tensor>& bias,
                                           double slope, double gain, c10::string_view mode) {
  check_upsample_input(x_in, "upsample2x");
  const bool bilinear = upsample_mode(std::string(mode)) == 1;
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = low_res_layout(x_in);
  const Geometry g = geometry_of(x);
  at::Tensor y = at::empty({g.N, g.C, 2 * g.H, 2 * g.W}, x.options().memory_format(format_of(g)));
  at::Tensor act = kActivate ? at::empty_like(x) : at::Tensor();
  if (x.numel() == 0) return {y, act};
  const bool has_bias = kActivate && bias.has_value() && bias->defined();
  const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upsample2x_cuda", [&] {
    Source<scalar_t, kActivate> src{x.const_data_ptr<scalar_t>(), has_bias ? b.const_data_ptr<scalar_t>() : nullptr,
                                    leaky_params<at::opmath_type<scalar_t>>(slope, gain)};
    forward_kernel<scalar_t, kActivate><<<blocks_for(x.numel()), kThreads, 0, stream()>>>(
        src, y.mutable_data_ptr<scalar_t>(), kActivate ? act.mutable_data_ptr<scalar_t>() : nullptr, g, bilinear);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {y, act};
}

at::Tensor backward(const at::Tensor& grad_in, const at::Tensor* act_in, double slope, double gain,
                    c10::string_view mode) {
  check_upsample_input(grad_in, "upsample2x_backward");
  TORCH_CHECK(grad_in.size(2) % 2 == 0 && grad_in.size(3) % 2 == 0,
              "upsample2x_backward: gradient height and width must be even, got ", grad_in.sizes());
  const bool bilinear = upsample_mode(std::string(mode)) == 1;
  c10::cuda::CUDAGuard guard(grad_in.device());
  at::Tensor act, gy;
  Geometry g;
  if (act_in != nullptr) {
    act = low_res_layout(*act_in);
    g = geometry_of(act);
    gy = grad_in.contiguous(format_of(g));
  } else {
    gy = low_res_layout(grad_in);
    g = make_geometry(gy.size(0), gy.size(1), gy.size(2) / 2, gy.size(3) / 2, is_channels_last(gy));
  }
  at::Tensor dx = at::empty({g.N, g.C, g.H, g.W}, gy.options().memory_format(format_of(g)));
  if (dx.numel() == 0) return dx;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gy.scalar_type(), "upsample2x_backward_cuda", [&] {
    backward_kernel<scalar_t><<<blocks_for(dx.numel()), kThreads, 0, stream()>>>(
        gy.const_data_ptr<scalar_t>(), act.defined() ? act.const_data_ptr<scalar_t>() : nullptr,
        dx.mutable_data_ptr<scalar_t>(), g, bilinear, leaky_params<at::opmath_type<scalar_t>>(slope, gain));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return dx;
}

at::Tensor upsample2x_cuda(const at::Tensor& x, c10::string_view mode) {
  return std::get<0>(forward<false>(x, c10::nullopt, 0.0, 1.0, mode));
}

at::Tensor upsample2x_backward_cuda(const at::Tensor& grad_y, c10::string_view mode) {
  return backward(grad_y, nullptr, 0.0, 1.0, mode);
}

std::tuple<at::Tensor, at::Tensor> fused_cuda(const at::Tensor& x, const c10::optional<at::Tensor>& bias,
                                              double slope, double gain, c10::string_view mode) {
  check_upsample_input(x, "upsample2x_bias_leaky_relu");
  check_bias_args(x, bias, 1);
  return forward<true>(x, bias, slope, gain, mode);
}

std::tuple<at::Tensor, at::Tensor> fused_backward_cuda(const at::Tensor& grad_y, const at::Tensor& act,
                                                       double slope, double gain, c10::string_view mode,
                                                       bool bias_grad) {
  check_upsample_input(act, "upsample2x_bias_leaky_relu_backward");
  TORCH_CHECK(grad_y.dim() == 4 && grad_y.size(0) == act.size(0) && grad_y.size(1) == act.size(1) &&
              grad_y.size(2) == 2 * act.size(2) && grad_y.size(3) == 2 * act.size(3),
              "upsample2x_bias_leaky_relu_backward: grad ", grad_y.sizes(), " does not match act ", act.sizes());
  TORCH_CHECK(grad_y.scalar_type() == act.scalar_type(), "upsample2x_bias_leaky_relu_backward: dtypes differ");
  at::Tensor dx = backward(grad_y, &act, slope, gain, mode);
  // The bias gradient is a second, low-resolution pass here (the CPU kernel
  // folds it into the first).
  at::Tensor dbias = bias_grad
      ? dx.sum(at::IntArrayRef{0, 2, 3}, false, at::toOpMathType(dx.scalar_type())).to(dx.scalar_type())
      : at::empty({0}, dx.options());
  return {dx, dbias};
}

}  // namespace
}  // namespace condgan::cuda

TORCH_LIBRARY_IMPL(condgan, CUDA, m) {
  m.impl("upsample2x", &condgan::cuda::upsample2x_cuda);
  m.impl("upsample2x_backward", &condgan::cuda::upsample2x_backward_cuda);
  m.impl("upsample2x_bias_leaky_relu", &condgan::cuda::fused_cuda);
  m.impl("upsample2x_bias_leaky_relu_backward", &condgan::cuda::fused_backward_cuda);
}
