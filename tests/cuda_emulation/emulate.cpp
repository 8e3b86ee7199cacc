// Runs the CUDA upsample kernels' per-element bodies (csrc/cuda/upsample2x_body.cuh)
// on the CPU: the same code the GPU threads run, called once for every
// index a grid-stride loop would visit. Built by tests/test_cuda_emulation.py
// with the host C++ compiler, so the kernels' index arithmetic, clamping,
// weights and activation are checked on machines without a GPU. What this
// cannot check: the launch, memory ordering, and anything the device
// compiler does differently.
#include <torch/extension.h>

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

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "CUDA upsample2x forward bodies, run on the CPU");
  m.def("backward", &backward, "CUDA upsample2x backward bodies, run on the CPU");
}
