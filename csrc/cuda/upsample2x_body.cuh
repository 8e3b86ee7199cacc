// Per-element bodies of the CUDA upsample2x kernels, written so they also
// compile as plain C++: the CUDA kernels in upsample2x_cuda.cu call them from
// grid-stride loops, and tests/cuda_emulation/ runs the very same bodies on
// the CPU over every index, which checks their index arithmetic and weights
// on machines without a GPU.
//
// One call handles one low-resolution element: the forward reads its 3x3
// neighbourhood once (1 value for nearest) and writes the 2x2 outputs it
// owns, so the coordinate split (integer divisions) is paid once per four
// outputs; the backward gathers the element's gradient from its 2x2
// (nearest) or 4x4 (bilinear, clamped) taps, with row and column offsets
// computed once. Weights as in csrc/cpu/upsample2x_rows.h.
#pragma once
#include <ATen/OpMathType.h>
#include <ATen/cuda/detail/IntegerDivider.cuh>

#include <cstdint>

#include "leaky_params.cuh"

namespace condgan::cuda {

// Low-resolution sizes and layout. The low-resolution tensor (forward input,
// backward output, saved activation) is dense in this layout, so its element
// at memory offset i has the coordinates low_coords(i) and no other offset.
// When every such offset fits in 31 bits (small_index), the coordinate split
// divides by multiplication with torch's IntDivider (a multiply-high and a
// shift per division instead of a 64-bit division); otherwise it divides
// plainly. make_geometry() sets both up.
struct Geometry {
  int64_t N, C, H, W;
  bool channels_last;
  bool small_index;
  at::cuda::detail::IntDivider<unsigned int> div_c, div_h, div_w;
  CONDGAN_HD int64_t low_numel() const { return N * C * H * W; }
  // Memory steps of one column and one row at width `width`.
  CONDGAN_HD int64_t col_step() const { return channels_last ? C : 1; }
  CONDGAN_HD int64_t row_step(int64_t width) const { return channels_last ? width * C : width; }
  // Offset of (n, c, 0, 0) in a tensor of height h_size and width w_size.
  CONDGAN_HD int64_t plane_origin(int64_t n, int64_t c, int64_t h_size, int64_t w_size) const {
    return channels_last ? n * h_size * w_size * C + c : (n * C + c) * h_size * w_size;
  }
  CONDGAN_HD void low_coords(int64_t i, int64_t& n, int64_t& c, int64_t& h, int64_t& w) const {
    if (small_index) {
      using Divider = at::cuda::detail::IntDivider<unsigned int>;
      unsigned int rest = static_cast<unsigned int>(i);
      auto take = [&rest](const Divider& d) {
        const auto qr = d.divmod(rest);
        rest = qr.div;
        return static_cast<int64_t>(qr.mod);
      };
      if (channels_last) {
        c = take(div_c); w = take(div_w); h = take(div_h);
      } else {
        w = take(div_w); h = take(div_h); c = take(div_c);
      }
      n = static_cast<int64_t>(rest);
      return;
    }
    if (channels_last) {
      c = i % C; i /= C; w = i % W; i /= W; h = i % H; n = i / H;
    } else {
      w = i % W; i /= W; h = i % H; i /= H; c = i % C; n = i / C;
    }
  }
};

// allow_small_index=false forces the plain-division path (the emulation tests
// use it to cover that path on small tensors).
inline Geometry make_geometry(int64_t N, int64_t C, int64_t H, int64_t W, bool channels_last,
                              bool allow_small_index = true) {
  Geometry g{N, C, H, W, channels_last, false, {}, {}, {}};
  const int64_t limit = INT32_MAX;
  if (allow_small_index && N * C * H * W <= limit && C >= 1 && H >= 1 && W >= 1) {
    g.small_index = true;
    g.div_c = at::cuda::detail::IntDivider<unsigned int>(static_cast<unsigned int>(C));
    g.div_h = at::cuda::detail::IntDivider<unsigned int>(static_cast<unsigned int>(H));
    g.div_w = at::cuda::detail::IntDivider<unsigned int>(static_cast<unsigned int>(W));
  }
  return g;
}

CONDGAN_HD int64_t clamp_index(int64_t v, int64_t size) { return v < 0 ? 0 : (v >= size ? size - 1 : v); }

// Source value of the low-resolution input at memory offset `offset`: raw, or
// activated with the bias of channel c.
template <typename scalar_t, bool kActivate>
struct Source {
  const scalar_t* x;
  const scalar_t* bias;
  LeakyParams<at::opmath_type<scalar_t>> p;
  CONDGAN_HD at::opmath_type<scalar_t> operator()(int64_t offset, int64_t c) const {
    using acc_t = at::opmath_type<scalar_t>;
    if constexpr (kActivate) return p.act(acc_t(x[offset]) + (bias != nullptr ? acc_t(bias[c]) : acc_t(0)));
    else return acc_t(x[offset]);
  }
};

// Writes the 2x2 outputs of low-resolution element i (and, when act is given,
// the activated value of element i itself).
template <typename scalar_t, bool kActivate>
CONDGAN_HD void forward_element(const Source<scalar_t, kActivate>& src, scalar_t* y, scalar_t* act,
                                const Geometry& g, bool bilinear, int64_t i) {
  using acc_t = at::opmath_type<scalar_t>;
  int64_t n, c, h, w;
  g.low_coords(i, n, c, h, w);
  const int64_t W2 = 2 * g.W;
  const int64_t out_col = g.col_step(), out_row = g.row_step(W2);
  const int64_t o00 = g.plane_origin(n, c, 2 * g.H, W2) + 2 * h * out_row + 2 * w * out_col;
  const int64_t outs[2][2] = {{o00, o00 + out_col}, {o00 + out_row, o00 + out_row + out_col}};
  const acc_t center = src(i, c);
  if (act != nullptr) act[i] = scalar_t(center);
  if (!bilinear) {
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) y[outs[a][b]] = scalar_t(center);
    return;
  }
  // v[r][s]: rows h-1, h, h+1 and columns w-1, w, w+1 (clamped) of the input.
  const int64_t in_col = g.col_step(), in_row = g.row_step(g.W);
  const int64_t rows[3] = {h > 0 ? -in_row : 0, 0, h + 1 < g.H ? in_row : 0};
  const int64_t cols[3] = {w > 0 ? -in_col : 0, 0, w + 1 < g.W ? in_col : 0};
  acc_t v[3][3];
  for (int r = 0; r < 3; ++r)
    for (int s = 0; s < 3; ++s) v[r][s] = (r == 1 && s == 1) ? center : src(i + rows[r] + cols[s], c);
  // Output (2h + a, 2w + b) leans on the previous neighbour when its offset is
  // even (a or b = 0), on the next one when odd: 3/4 own row, 1/4 the other.
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) {
      const int r = 2 * a, s = 2 * b;
      const acc_t own = acc_t(0.75) * v[1][1] + acc_t(0.25) * v[1][s];
      const acc_t other = acc_t(0.75) * v[r][1] + acc_t(0.25) * v[r][s];
      y[outs[a][b]] = scalar_t(acc_t(0.75) * own + acc_t(0.25) * other);
    }
}

// dx (or, with act, the activation gradient) of low-resolution element i.
template <typename scalar_t>
CONDGAN_HD void backward_element(const scalar_t* gy, const scalar_t* act, scalar_t* dx, const Geometry& g,
                                 bool bilinear, LeakyParams<at::opmath_type<scalar_t>> p, int64_t i) {
  using acc_t = at::opmath_type<scalar_t>;
  int64_t n, c, h, w;
  g.low_coords(i, n, c, h, w);
  const int64_t H2 = 2 * g.H, W2 = 2 * g.W;
  const int64_t out_col = g.col_step(), out_row = g.row_step(W2);
  const int64_t origin = g.plane_origin(n, c, H2, W2);
  acc_t total = 0;
  if (!bilinear) {
    const int64_t o00 = origin + 2 * h * out_row + 2 * w * out_col;
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) total += acc_t(gy[o00 + a * out_row + b * out_col]);
  } else {
    const acc_t weights[4] = {acc_t(0.25), acc_t(0.75), acc_t(0.75), acc_t(0.25)};
    int64_t cols[4];
    for (int b = 0; b < 4; ++b) cols[b] = clamp_index(2 * w - 1 + b, W2) * out_col;
    for (int a = 0; a < 4; ++a) {
      const scalar_t* row_ptr = gy + origin + clamp_index(2 * h - 1 + a, H2) * out_row;
      acc_t row = 0;
      for (int b = 0; b < 4; ++b) row += weights[b] * acc_t(row_ptr[cols[b]]);
      total += weights[a] * row;
    }
  }
  dx[i] = scalar_t(act != nullptr ? p.grad(total, acc_t(act[i])) : total);
}

}  // namespace condgan::cuda
