// Runs the CUDA kernels' per-thread bodies (csrc/cuda/upsample2x_body.cuh,
// csrc/cuda/bias_leaky_relu_body.cuh) on the CPU: the same code the GPU
// threads run, called once for every index a grid-stride loop would visit,
// and for the block reductions once per thread of each block, the threads'
// sums added in place of the block-wide sum. Built by tests/test_cuda_emulation.py
// with the host C++ compiler, so the kernels' index arithmetic, clamping,
// weights and activation are checked on machines without a GPU. What this
// cannot check: the launch, memory ordering, and anything the device
// compiler does differently.
#include <torch/extension.h>

#include "../../csrc/cuda/bias_leaky_relu_body.cuh"
#include "../../csrc/cuda/upsample2x_body.cuh"
#include "../../csrc/layout.h"

namespace cu = condgan::cuda;

namespace {

// small_index=false forces the kernels' plain 64-bit division path.
cu::Geometry geometry_of(const at::Tensor& low, bool small_index) {
  return cu::make_geometry(low.size(0), low.size(1), low.size(2), low.size(3), condgan::is_channels_last(low),
                           small_index);
}

// Writes into y (and act) in place; the caller lays them out like x.
void forward(const at::Tensor& x, const c10::optional<at::Tensor>& bias, at::Tensor y,
             const c10::optional<at::Tensor>& act, double slope, double gain, bool bilinear, bool activate,
             bool small_index) {
  const cu::Geometry g = geometry_of(x, small_index);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "emulate_forward", [&] {
    const scalar_t* b = bias.has_value() ? bias->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* a = act.has_value() ? act->mutable_data_ptr<scalar_t>() : nullptr;
    const auto params = cu::leaky_params<at::opmath_type<scalar_t>>(slope, gain);
    auto run = [&](auto src) {
      for (int64_t i = 0; i < g.low_numel(); ++i)
        cu::forward_element(src, y.mutable_data_ptr<scalar_t>(), a, g, bilinear, i);
    };
    if (activate) run(cu::Source<scalar_t, true>{x.const_data_ptr<scalar_t>(), b, params});
    else run(cu::Source<scalar_t, false>{x.const_data_ptr<scalar_t>(), nullptr, params});
  });
}

// Writes into dx in place; dx (and act) are laid out like the low-resolution tensor.
void backward(const at::Tensor& gy, const c10::optional<at::Tensor>& act, at::Tensor dx, double slope, double gain,
              bool bilinear, bool small_index) {
  const cu::Geometry g = geometry_of(dx, small_index);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gy.scalar_type(), "emulate_backward", [&] {
    const scalar_t* a = act.has_value() ? act->const_data_ptr<scalar_t>() : nullptr;
    const auto params = cu::leaky_params<at::opmath_type<scalar_t>>(slope, gain);
    for (int64_t i = 0; i < g.low_numel(); ++i)
      cu::backward_element<scalar_t>(gy.const_data_ptr<scalar_t>(), a, dx.mutable_data_ptr<scalar_t>(), g, bilinear,
                                     params, i);
  });
}

// bias_leaky_relu forward into y (laid out like the dense x).
void blr_forward(const at::Tensor& x, const c10::optional<at::Tensor>& bias, at::Tensor y, double slope, double gain,
                 int64_t dim, bool small_index) {
  const int64_t numel = x.numel();
  const condgan::ChannelLayout L =
      bias.has_value() ? condgan::channel_layout(x, at::maybe_wrap_dim(dim, x.dim())) : condgan::ChannelLayout{1, 1, numel};
  const cu::ChannelOf channel_of = cu::make_channel_of(L.channels, L.inner, numel, small_index);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "emulate_blr_forward", [&] {
    const scalar_t* b = bias.has_value() ? bias->const_data_ptr<scalar_t>() : nullptr;
    const auto params = cu::leaky_params<at::opmath_type<scalar_t>>(slope, gain);
    for (int64_t i = 0; i < numel; ++i)
      cu::forward_element(x.const_data_ptr<scalar_t>(), b, y.mutable_data_ptr<scalar_t>(), channel_of, params, i);
  });
}

// bias_leaky_relu backward into dx; returns the bias gradient, reduced as the
// CUDA host code does (row chunks or channel slices, then a sum).
at::Tensor blr_backward(const at::Tensor& g, const at::Tensor& y, at::Tensor dx, double slope, double gain,
                        int64_t dim, bool bias_grad) {
  constexpr int64_t kLanes = cu::kRowChunk / 8;  // threads per block in the CUDA launch
  const int64_t numel = y.numel();
  at::Tensor dbias = at::empty({0}, y.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "emulate_blr_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto params = cu::leaky_params<acc_t>(slope, gain);
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const scalar_t* yp = y.const_data_ptr<scalar_t>();
    scalar_t* dxp = dx.mutable_data_ptr<scalar_t>();
    if (!bias_grad) {
      for (int64_t i = 0; i < numel; ++i) cu::grad_element(gp, yp, dxp, params, i);
      return;
    }
    const condgan::ChannelLayout L = condgan::channel_layout(y, at::maybe_wrap_dim(dim, y.dim()));
    const auto acc_dtype = at::toOpMathType(y.scalar_type());
    if (L.inner > 1 || L.channels == 1) {
      const int64_t chunks = cu::row_chunks(L.inner);
      at::Tensor partial = at::empty({L.outer, L.channels, chunks}, y.options().dtype(acc_dtype));
      for (int64_t t = 0; t < L.outer * L.channels * chunks; ++t) {
        acc_t sum = 0;
        for (int64_t lane = 0; lane < kLanes; ++lane)
          sum += cu::grad_rows_thread(gp, yp, dxp, L.inner, chunks, params, t, lane, kLanes);
        partial.mutable_data_ptr<acc_t>()[t] = sum;
      }
      dbias = partial.sum(at::IntArrayRef{0, 2}).to(y.scalar_type());
    } else {
      const int64_t slices = cu::channel_slices(L.outer);
      at::Tensor partial = at::empty({slices, L.channels}, y.options().dtype(acc_dtype));
      for (int64_t s = 0; s < slices; ++s)
        for (int64_t c = 0; c < L.channels; ++c)
          partial.mutable_data_ptr<acc_t>()[s * L.channels + c] =
              cu::grad_channels_thread(gp, yp, dxp, L.outer, L.channels, params, c, s, slices);
      dbias = partial.sum(0).to(y.scalar_type());
    }
  });
  return dbias;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "CUDA upsample2x forward bodies, run on the CPU");
  m.def("backward", &backward, "CUDA upsample2x backward bodies, run on the CPU");
  m.def("blr_forward", &blr_forward, "CUDA bias_leaky_relu forward bodies, run on the CPU");
  m.def("blr_backward", &blr_backward, "CUDA bias_leaky_relu backward bodies and reduction, run on the CPU");
}
