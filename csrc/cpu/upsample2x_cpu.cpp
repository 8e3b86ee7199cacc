// CPU kernels for upsample2x and its backward (the adjoint). Parallel over
// input rows; each task reads one input row (plus neighbours for bilinear)
// and writes the two output rows it produces, so every element is written
// exactly once.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "upsample2x_rows.h"
#include "upsample2x_walk.h"

namespace condgan::cpu {
namespace {

template <typename scalar_t>
void forward_kernel(const scalar_t* x, scalar_t* y, const Geometry& g, int mode) {
  const int64_t len = g.row_len();
  at::parallel_for(0, g.rows(), grain_rows(5 * len), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t p = r / g.H, i = r % g.H;
      prefetch_elems(x, (r + 1 + mode) * len, len, g.in_elems());  // the next task's new input row
      const scalar_t *up = x + g.in_row(p, i - 1), *mid = x + g.in_row(p, i), *dn = x + g.in_row(p, i + 1);
      scalar_t* y0 = y + g.out_row(p, 2 * i);
      scalar_t* y1 = y0 + 2 * len;
      if (g.channels_last) {
        if (mode == 0) nearest_fwd_row_cl<scalar_t>(mid, y0, y1, g.W, g.C);
        else bilinear_fwd_row_cl<scalar_t>(up, mid, dn, y0, y1, g.W, g.C);
      } else {
        if (mode == 0) nearest_fwd_row<scalar_t>(mid, y0, y1, g.W);
        else bilinear_fwd_row<scalar_t>(up, mid, dn, y0, y1, g.W);
      }
    }
  });
}

template <typename scalar_t>
void backward_kernel(const scalar_t* gy, scalar_t* dx, const Geometry& g, int mode) {
  const int64_t len = g.row_len();
  at::parallel_for(0, g.rows(), grain_rows(5 * len), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t p = r / g.H, i = r % g.H;
      const scalar_t* rows[4];
      for (int a = 0; a < 4; ++a) rows[a] = gy + g.out_row(p, 2 * i - 1 + a);
      prefetch_elems(gy, (2 * r + 2 + mode) * 2 * len, 4 * len, g.out_elems());  // the next task's two new rows
      scalar_t* out = dx + g.in_row(p, i);
      if (g.channels_last) {
        if (mode == 0) nearest_bwd_row_cl<scalar_t>(rows[1], rows[2], out, g.W, g.C);
        else bilinear_bwd_row_cl<scalar_t>(rows, out, g.W, g.C);
      } else {
        if (mode == 0) nearest_bwd_row<scalar_t>(rows[1], rows[2], out, g.W);
        else bilinear_bwd_row<scalar_t>(rows, out, g.W);
      }
    }
  });
}

at::Tensor upsample2x_cpu(const at::Tensor& x_in, c10::string_view mode_name) {
  check_upsample_input(x_in, "upsample2x");
  const int mode = upsample_mode(std::string(mode_name));
  const at::Tensor x = nchw_or_channels_last(x_in);
  const Geometry g = geometry_of(x);
  at::Tensor y = at::empty({g.N, g.C, 2 * g.H, 2 * g.W}, x.options().memory_format(format_of(g)));
  if (y.numel() == 0) return y;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upsample2x_cpu", [&] {
    forward_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), g, mode);
  });
  return y;
}

at::Tensor upsample2x_backward_cpu(const at::Tensor& grad_in, c10::string_view mode_name) {
  check_upsample_input(grad_in, "upsample2x_backward");
  TORCH_CHECK(grad_in.size(2) % 2 == 0 && grad_in.size(3) % 2 == 0,
              "upsample2x_backward: gradient height and width must be even, got ", grad_in.sizes());
  const int mode = upsample_mode(std::string(mode_name));
  const at::Tensor gy = nchw_or_channels_last(grad_in);
  const Geometry g{gy.size(0), gy.size(1), gy.size(2) / 2, gy.size(3) / 2, is_channels_last(gy)};
  at::Tensor dx = at::empty({g.N, g.C, g.H, g.W}, gy.options().memory_format(format_of(g)));
  if (dx.numel() == 0) return dx;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gy.scalar_type(), "upsample2x_backward_cpu", [&] {
    backward_kernel<scalar_t>(gy.const_data_ptr<scalar_t>(), dx.mutable_data_ptr<scalar_t>(), g, mode);
  });
  return dx;
}

}  // namespace
}  // namespace condgan::cpu

TORCH_LIBRARY_IMPL(condgan, CPU, m) {
  m.impl("upsample2x", &condgan::cpu::upsample2x_cpu);
  m.impl("upsample2x_backward", &condgan::cpu::upsample2x_backward_cpu);
}
