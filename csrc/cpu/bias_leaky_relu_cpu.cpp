// CPU kernels for bias_leaky_relu and its backward.
//
// Every tensor is walked as a flat dense buffer viewed as [outer, C, inner]
// (see layout.h), so contiguous and channels_last inputs need no copy and the
// output keeps the input's strides. Two loop shapes cover all layouts:
//   rows:     inner > 1 (e.g. NCHW): each run of `inner` elements has one bias.
//   channels: inner == 1 (e.g. NHWC): the bias varies along the vector lanes.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../layout.h"
#include "leaky.h"

namespace condgan::cpu {
namespace {

// Elements per bias-gradient partial sum: fixed, so the reduction order (and
// the result) does not depend on the number of threads.
constexpr int64_t kBlock = 8192;

template <typename scalar_t>
void forward_kernel(const scalar_t* x, const scalar_t* bias, scalar_t* y, ChannelLayout L,
                    double slope, double gain) {
  using IO = VecIO<scalar_t>;
  using acc_t = acc_type<scalar_t>;
  using Vec = typename IO::Vec;
  constexpr int P = IO::kParts;
  const Leaky<acc_t> act(gain, slope);
  const auto b = padded_bias(bias, L.channels);
  const int64_t numel = L.outer * L.channels * L.inner;

  if (L.inner > 1 || L.channels == 1) {
    at::parallel_for(0, numel, kGrainElems, [&](int64_t begin, int64_t end) {
      Vec v[P];
      for (int64_t i = begin; i < end;) {
        const int64_t row = i / L.inner;
        const int64_t stop = std::min(end, (row + 1) * L.inner);
        const Vec bv(b[row % L.channels]);
        for (; i + IO::kStep <= stop; i += IO::kStep) {
          IO::load(x + i, v);
          for (int p = 0; p < P; ++p) v[p] = act(v[p] + bv);
          IO::store(y + i, v);
        }
        if (i < stop) {
          IO::load(x + i, v, stop - i);
          for (int p = 0; p < P; ++p) v[p] = act(v[p] + bv);
          IO::store(y + i, v, stop - i);
          i = stop;
        }
      }
    });
    return;
  }
  const int64_t C = L.channels;
  at::parallel_for(0, L.outer, grain_rows(C), [&](int64_t begin, int64_t end) {
    Vec v[P];
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t* xr = x + r * C;
      scalar_t* yr = y + r * C;
      for (int64_t c = 0; c < C; c += IO::kStep) {
        const int64_t n = std::min<int64_t>(IO::kStep, C - c);
        if (n == IO::kStep) IO::load(xr + c, v); else IO::load(xr + c, v, n);
        for (int p = 0; p < P; ++p) v[p] = act(v[p] + Vec::loadu(b.data() + c + p * Vec::size()));
        if (n == IO::kStep) IO::store(yr + c, v); else IO::store(yr + c, v, n);
      }
    }
  });
}

// One pass over (grad, y) for a flat range: writes dx, returns the sum of dx.
template <typename scalar_t>
acc_type<scalar_t> backward_range(const scalar_t* g, const scalar_t* y, scalar_t* dx,
                                  int64_t begin, int64_t end, const LeakyGrad<acc_type<scalar_t>>& d) {
  using IO = VecIO<scalar_t>;
  using Vec = typename IO::Vec;
  constexpr int P = IO::kParts;
  Vec gv[P], yv[P], sum(0);
  int64_t i = begin;
  for (; i + IO::kStep <= end; i += IO::kStep) {
    IO::load(g + i, gv);
    IO::load(y + i, yv);
    for (int p = 0; p < P; ++p) { gv[p] = d(gv[p], yv[p]); sum = sum + gv[p]; }
    IO::store(dx + i, gv);
  }
  if (i < end) {
    // Partial loads zero the unused lanes, so they add nothing to the sum.
    IO::load(g + i, gv, end - i);
    IO::load(y + i, yv, end - i);
    for (int p = 0; p < P; ++p) { gv[p] = d(gv[p], yv[p]); sum = sum + gv[p]; }
    IO::store(dx + i, gv, end - i);
  }
  return at::vec::vec_reduce_all<acc_type<scalar_t>>([](Vec& a, Vec& b) { return a + b; }, sum);
}

template <typename scalar_t>
void backward_kernel(const scalar_t* g, const scalar_t* y, scalar_t* dx, scalar_t* dbias,
                     ChannelLayout L, double slope, double gain) {
  using IO = VecIO<scalar_t>;
  using acc_t = acc_type<scalar_t>;
  using Vec = typename IO::Vec;
  constexpr int P = IO::kParts;
  const LeakyGrad<acc_t> d(gain, slope);
  const int64_t numel = L.outer * L.channels * L.inner;
  const int64_t C = L.channels;

  if (dbias == nullptr) {
    at::parallel_for(0, numel, kGrainElems, [&](int64_t begin, int64_t end) {
      backward_range(g, y, dx, begin, end, d);
    });
    return;
  }
  if (L.inner > 1 || C == 1) {
    // Rows are cut into fixed blocks; each block leaves one partial sum.
    const int64_t blocks = (L.inner + kBlock - 1) / kBlock;
    const int64_t tasks = L.outer * C * blocks;
    std::vector<acc_t> partial(tasks);
    const int64_t grain = grain_rows(std::min(L.inner, kBlock));
    at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t row = t / blocks, start = row * L.inner + (t % blocks) * kBlock;
        const int64_t stop = std::min(start + kBlock, (row + 1) * L.inner);
        partial[t] = backward_range(g, y, dx, start, stop, d);
      }
    });
    for (int64_t c = 0; c < C; ++c) {
      double total = 0;
      for (int64_t o = 0; o < L.outer; ++o)
        for (int64_t k = 0; k < blocks; ++k) total += partial[(o * C + c) * blocks + k];
      dbias[c] = static_cast<scalar_t>(total);
    }
    return;
  }
  // Channel loop: each chunk of rows accumulates a padded per-channel row.
  const int64_t Cpad = ((C + IO::kStep - 1) / IO::kStep) * IO::kStep;
  const int64_t chunk = std::max<int64_t>(1, kBlock / C);
  const int64_t chunks = (L.outer + chunk - 1) / chunk;
  std::vector<acc_t> partial(chunks * Cpad, acc_t(0));
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    Vec gv[P], yv[P];
    for (int64_t k = begin; k < end; ++k) {
      acc_t* acc = partial.data() + k * Cpad;
      for (int64_t r = k * chunk; r < std::min(L.outer, (k + 1) * chunk); ++r) {
        const int64_t off = r * C;
        for (int64_t c = 0; c < C; c += IO::kStep) {
          const int64_t n = std::min<int64_t>(IO::kStep, C - c);
          if (n == IO::kStep) { IO::load(g + off + c, gv); IO::load(y + off + c, yv); }
          else { IO::load(g + off + c, gv, n); IO::load(y + off + c, yv, n); }
          for (int p = 0; p < P; ++p) {
            gv[p] = d(gv[p], yv[p]);
            acc_t* a = acc + c + p * Vec::size();
            (Vec::loadu(a) + gv[p]).store(a);
          }
          if (n == IO::kStep) IO::store(dx + off + c, gv); else IO::store(dx + off + c, gv, n);
        }
      }
    }
  });
  for (int64_t c = 0; c < C; ++c) {
    double total = 0;
    for (int64_t k = 0; k < chunks; ++k) total += partial[k * Cpad + c];
    dbias[c] = static_cast<scalar_t>(total);
  }
}

at::Tensor bias_leaky_relu_cpu(const at::Tensor& x_in, const c10::optional<at::Tensor>& bias,
                               double slope, double gain, int64_t dim) {
  const int64_t d = check_bias_args(x_in, bias, dim);
  const bool has_bias = bias.has_value() && bias->defined();
  const at::Tensor x = dense(x_in);
  at::Tensor y = at::empty_like(x);
  if (x.numel() == 0) return y;
  const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
  const ChannelLayout L = has_bias ? channel_layout(x, d) : ChannelLayout{1, 1, x.numel()};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_leaky_relu_cpu", [&] {
    forward_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), has_bias ? b.const_data_ptr<scalar_t>() : nullptr,
                             y.mutable_data_ptr<scalar_t>(), L, slope, gain);
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_cpu(
    const at::Tensor& grad_y, const at::Tensor& y_in, double slope, double gain, int64_t dim, bool bias_grad) {
  TORCH_CHECK(grad_y.sizes() == y_in.sizes(), "bias_leaky_relu_backward: grad and y shapes differ");
  TORCH_CHECK(grad_y.scalar_type() == y_in.scalar_type(), "bias_leaky_relu_backward: grad and y dtypes differ");
  const int64_t d = bias_grad ? at::maybe_wrap_dim(dim, y_in.dim()) : 0;
  const at::Tensor y = dense(y_in);
  const at::Tensor g = like_layout(grad_y, y);
  at::Tensor dx = at::empty_like(y);
  at::Tensor dbias = bias_grad ? at::zeros({y.size(d)}, y.options()) : at::empty({0}, y.options());
  if (y.numel() == 0) return {dx, dbias};
  const ChannelLayout L = bias_grad ? channel_layout(y, d) : ChannelLayout{1, 1, y.numel()};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "bias_leaky_relu_backward_cpu", [&] {
    backward_kernel<scalar_t>(g.const_data_ptr<scalar_t>(), y.const_data_ptr<scalar_t>(),
                              dx.mutable_data_ptr<scalar_t>(),
                              bias_grad ? dbias.mutable_data_ptr<scalar_t>() : nullptr, L, slope, gain);
  });
  return {dx, dbias};
}

}  // namespace
}  // namespace condgan::cpu

TORCH_LIBRARY_IMPL(condgan, CPU, m) {
  m.impl("bias_leaky_relu", &condgan::cpu::bias_leaky_relu_cpu);
  m.impl("bias_leaky_relu_backward", &condgan::cpu::bias_leaky_relu_backward_cpu);
}
