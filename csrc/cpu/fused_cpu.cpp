// CPU kernels for upsample2x_bias_leaky_relu: the decoder's "activate, then
// upsample" in one pass. Each task activates the input rows it needs into a
// small buffer in the compute type, writes the low-resolution activation once
// (saved for backward), then runs the ordinary upsample row kernel on the
// buffer. The backward gathers the upsampling adjoint into a buffer row and
// applies the activation gradient and bias sums before anything is stored.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "leaky.h"
#include "upsample2x_rows.h"
#include "upsample2x_walk.h"

namespace condgan::cpu {
namespace {

// Activates one input row into `out` (compute type); also stores it to `act`
// when given. NCHW rows have one bias; channels_last rows cycle through C.
template <typename scalar_t>
void activate_row(const scalar_t* x, acc_type<scalar_t>* out, scalar_t* act, const Geometry& g,
                  int64_t plane, const std::vector<acc_type<scalar_t>>& bias, const Leaky<acc_type<scalar_t>>& f) {
  using B = Blocks<scalar_t>;
  using Vec = typename B::Vec;
  Vec v[B::P];
  auto one = [&](int64_t off, int64_t n, const acc_type<scalar_t>* b, bool broadcast) {
    B::load(x + off, v, n);
    for (int k = 0; k < B::P; ++k)
      v[k] = f(v[k] + (broadcast ? Vec(b[0]) : Vec::loadu(b + k * B::V)));
    B::store(out + off, v, n);
    if (act != nullptr) B::store(act + off, v, n);
  };
  if (g.channels_last) {
    for (int64_t j = 0; j < g.W; ++j)
      for_channel_blocks<scalar_t>(g.C, [&](int64_t c, int64_t n) { one(j * g.C + c, n, bias.data() + c, false); });
  } else {
    const auto* b = bias.data() + plane % g.C;
    for (int64_t j = 0; j < g.W; j += B::kStep) one(j, std::min<int64_t>(B::kStep, g.W - j), b, true);
  }
}

template <typename scalar_t>
void forward_kernel(const scalar_t* x, const scalar_t* bias_ptr, scalar_t* y, scalar_t* act,
                    const Geometry& g, int mode, double slope, double gain) {
  using acc_t = acc_type<scalar_t>;
  const Leaky<acc_t> f(gain, slope);
  const auto bias = padded_bias(bias_ptr, g.C);
  const int64_t len = g.row_len();
  at::parallel_for(0, g.rows(), grain_rows(6 * len), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> buf(3 * len);
    acc_t *up = buf.data(), *mid = up + len, *dn = mid + len;
    for (int64_t r = begin; r < end; ++r) {
      const int64_t p = r / g.H, i = r % g.H;
      prefetch_elems(x, (r + 1 + mode) * len, len, g.in_elems());  // the next task's new input row
      const int64_t in = g.in_row(p, i);
      activate_row<scalar_t>(x + in, mid, act + in, g, p, bias, f);
      scalar_t* y0 = y + g.out_row(p, 2 * i);
      scalar_t* y1 = y0 + 2 * len;
      if (mode == 0) {
        if (g.channels_last) nearest_fwd_row_cl<scalar_t>(mid, y0, y1, g.W, g.C);
        else nearest_fwd_row<scalar_t>(mid, y0, y1, g.W);
        continue;
      }
      // Neighbour rows are re-activated rather than shared across tasks:
      // cheap arithmetic, and tasks stay independent.
      const int64_t above = g.in_row(p, i - 1), below = g.in_row(p, i + 1);
      activate_row<scalar_t>(x + above, up, nullptr, g, p, bias, f);
      activate_row<scalar_t>(x + below, dn, nullptr, g, p, bias, f);
      if (g.channels_last) bilinear_fwd_row_cl<scalar_t>(up, mid, dn, y0, y1, g.W, g.C);
      else bilinear_fwd_row<scalar_t>(up, mid, dn, y0, y1, g.W);
    }
  });
}

// Writes dx for one row and adds its bias-gradient contributions to `sums`
// (one slot for an NCHW row, C slots for a channels_last row).
template <typename scalar_t>
void grad_row(const acc_type<scalar_t>* gathered, const scalar_t* act, scalar_t* dx, acc_type<scalar_t>* sums,
              const Geometry& g, const LeakyGrad<acc_type<scalar_t>>& d) {
  using B = Blocks<scalar_t>;
  using Vec = typename B::Vec;
  Vec gv[B::P], av[B::P];
  if (g.channels_last) {
    for (int64_t j = 0; j < g.W; ++j)
      for_channel_blocks<scalar_t>(g.C, [&](int64_t c, int64_t n) {
        B::load(gathered + j * g.C + c, gv, n);
        B::load(act + j * g.C + c, av, n);
        for (int k = 0; k < B::P; ++k) {
          gv[k] = d(gv[k], av[k]);
          auto* s = sums + c + k * B::V;
          (Vec::loadu(s) + gv[k]).store(s);
        }
        B::store(dx + j * g.C + c, gv, n);
      });
    return;
  }
  Vec total(0);
  for (int64_t j = 0; j < g.W; j += B::kStep) {
    const int64_t n = std::min<int64_t>(B::kStep, g.W - j);
    B::load(gathered + j, gv, n);
    B::load(act + j, av, n);  // partial loads zero the unused lanes
    for (int k = 0; k < B::P; ++k) { gv[k] = d(gv[k], av[k]); total = total + gv[k]; }
    B::store(dx + j, gv, n);
  }
  sums[0] += at::vec::vec_reduce_all<acc_type<scalar_t>>([](Vec& a, Vec& b) { return a + b; }, total);
}

template <typename scalar_t>
void backward_kernel(const scalar_t* gy, const scalar_t* act, scalar_t* dx, scalar_t* dbias,
                     const Geometry& g, int mode, double slope, double gain) {
  using acc_t = acc_type<scalar_t>;
  const LeakyGrad<acc_t> d(gain, slope);
  const int64_t len = g.row_len();
  const int64_t step = Blocks<scalar_t>::kStep;
  // One padded slot group per input row: a fixed reduction order.
  const int64_t slots = g.channels_last ? ((g.C + step - 1) / step) * step : 1;
  std::vector<acc_t> partial(g.rows() * slots, acc_t(0));
  at::parallel_for(0, g.rows(), grain_rows(6 * len), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> buf(len);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t p = r / g.H, i = r % g.H;
      const scalar_t* rows[4];
      for (int a = 0; a < 4; ++a) rows[a] = gy + g.out_row(p, 2 * i - 1 + a);
      prefetch_elems(gy, (2 * r + 2 + mode) * 2 * len, 4 * len, g.out_elems());  // the next task's two new rows
      if (g.channels_last) {
        if (mode == 0) nearest_bwd_row_cl<scalar_t>(rows[1], rows[2], buf.data(), g.W, g.C);
        else bilinear_bwd_row_cl<scalar_t>(rows, buf.data(), g.W, g.C);
      } else {
        if (mode == 0) nearest_bwd_row<scalar_t>(rows[1], rows[2], buf.data(), g.W);
        else bilinear_bwd_row<scalar_t>(rows, buf.data(), g.W);
      }
      const int64_t off = g.in_row(p, i);
      grad_row<scalar_t>(buf.data(), act + off, dx + off, partial.data() + r * slots, g, d);
    }
  });
  if (dbias == nullptr) return;
  for (int64_t c = 0; c < g.C; ++c) {
    double total = 0;
    if (g.channels_last) {
      for (int64_t r = 0; r < g.rows(); ++r) total += partial[r * slots + c];
    } else {
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t i = 0; i < g.H; ++i) total += partial[(n * g.C + c) * g.H + i];
    }
    dbias[c] = static_cast<scalar_t>(total);
  }
}

std::tuple<at::Tensor, at::Tensor> fused_cpu(const at::Tensor& x_in, const c10::optional<at::Tensor>& bias,
                                             double slope, double gain, c10::string_view mode_name) {
  check_upsample_input(x_in, "upsample2x_bias_leaky_relu");
  check_bias_args(x_in, bias, 1);
  const int mode = upsample_mode(std::string(mode_name));
  const bool has_bias = bias.has_value() && bias->defined();
  const at::Tensor x = nchw_or_channels_last(x_in);
  const Geometry g = geometry_of(x);
  at::Tensor y = at::empty({g.N, g.C, 2 * g.H, 2 * g.W}, x.options().memory_format(format_of(g)));
  at::Tensor act = at::empty_like(x);
  if (x.numel() == 0) return {y, act};
  const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upsample2x_bias_leaky_relu_cpu", [&] {
    forward_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), has_bias ? b.const_data_ptr<scalar_t>() : nullptr,
                             y.mutable_data_ptr<scalar_t>(), act.mutable_data_ptr<scalar_t>(), g, mode, slope, gain);
  });
  return {y, act};
}

std::tuple<at::Tensor, at::Tensor> fused_backward_cpu(const at::Tensor& grad_in, const at::Tensor& act_in,
                                                      double slope, double gain, c10::string_view mode_name,
                                                      bool bias_grad) {
  check_upsample_input(grad_in, "upsample2x_bias_leaky_relu_backward");
  check_upsample_input(act_in, "upsample2x_bias_leaky_relu_backward");
  TORCH_CHECK(grad_in.size(0) == act_in.size(0) && grad_in.size(1) == act_in.size(1) &&
              grad_in.size(2) == 2 * act_in.size(2) && grad_in.size(3) == 2 * act_in.size(3),
              "upsample2x_bias_leaky_relu_backward: grad ", grad_in.sizes(), " does not match act ", act_in.sizes());
  TORCH_CHECK(grad_in.scalar_type() == act_in.scalar_type(), "upsample2x_bias_leaky_relu_backward: dtypes differ");
  const int mode = upsample_mode(std::string(mode_name));
  const at::Tensor act = nchw_or_channels_last(act_in);
  const Geometry g = geometry_of(act);
  const at::Tensor gy = grad_in.contiguous(format_of(g));
  at::Tensor dx = at::empty_like(act);
  at::Tensor dbias = bias_grad ? at::zeros({g.C}, act.options()) : at::empty({0}, act.options());
  if (act.numel() == 0) return {dx, dbias};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, act.scalar_type(), "upsample2x_bias_leaky_relu_backward_cpu", [&] {
    backward_kernel<scalar_t>(gy.const_data_ptr<scalar_t>(), act.const_data_ptr<scalar_t>(),
                              dx.mutable_data_ptr<scalar_t>(), bias_grad ? dbias.mutable_data_ptr<scalar_t>() : nullptr,
                              g, mode, slope, gain);
  });
  return {dx, dbias};
}

}  // namespace
}  // namespace condgan::cpu

TORCH_LIBRARY_IMPL(condgan, CPU, m) {
  m.impl("upsample2x_bias_leaky_relu", &condgan::cpu::fused_cpu);
  m.impl("upsample2x_bias_leaky_relu_backward", &condgan::cpu::fused_backward_cpu);
}
