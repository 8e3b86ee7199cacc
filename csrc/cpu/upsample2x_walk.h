// How the CPU upsample kernels walk a tensor: as "planes" of H rows. NCHW
// has N*C planes with rows of W values; channels_last has N planes with rows
// of W*C values. Output plane p row o starts at (p*2H + o) * 2*row_len.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>

#include "../layout.h"

namespace condgan::cpu {

struct Geometry {
  int64_t N, C, H, W;
  bool channels_last;
  int64_t planes() const { return channels_last ? N : N * C; }
  int64_t rows() const { return planes() * H; }
  int64_t row_len() const { return channels_last ? W * C : W; }
  // Input row i of plane p, clamped to the plane.
  int64_t in_row(int64_t p, int64_t i) const {
    return (p * H + std::clamp<int64_t>(i, 0, H - 1)) * row_len();
  }
  // Output row o of plane p, clamped to the plane.
  int64_t out_row(int64_t p, int64_t o) const {
    return (p * 2 * H + std::clamp<int64_t>(o, 0, 2 * H - 1)) * 2 * row_len();
  }
};

// Low-resolution tensors (forward input, backward output) are channels_last
// or contiguous NCHW; anything else is copied to contiguous first.
inline at::Tensor nchw_or_channels_last(const at::Tensor& t) {
  if (is_channels_last(t)) return t;
  return t.contiguous();
}

inline Geometry geometry_of(const at::Tensor& low_res) {
  return {low_res.size(0), low_res.size(1), low_res.size(2), low_res.size(3), is_channels_last(low_res)};
}

inline at::MemoryFormat format_of(const Geometry& g) {
  return g.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

}  // namespace condgan::cpu
