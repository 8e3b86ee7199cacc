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
  int64_t in_elems() const { return rows() * row_len(); }
  int64_t out_elems() const { return 4 * in_elems(); }
  // Output row o of plane p, clamped to the plane.
  int64_t out_row(int64_t p, int64_t o) const {
    return (p * 2 * H + std::clamp<int64_t>(o, 0, 2 * H - 1)) * 2 * row_len();
  }
};

// Asks the cache for elements [begin, begin + count) of a buffer holding
// `total` elements, clipped to the buffer, when they span at most
// kPrefetchMaxBytes. The row tasks call it for the rows the next task reads
// first: a bilinear task on short NCHW rows opens two fresh rows at once and
// used to stall on their first lines (backward 33 -> 28 ms at
// (16, 64, 128, 128) float32, 2 threads). Long rows (channels_last: W * C
// values) stream well by themselves, and prefetching them made the
// channels_last backward slower (22.5 -> 24.4 ms), hence the limit.
constexpr int64_t kPrefetchMaxBytes = 4096;

template <typename T>
inline void prefetch_elems(const T* base, int64_t begin, int64_t count, int64_t total) {
#if defined(__GNUC__) || defined(__clang__)
  const int64_t end = std::min(begin + count, total);
  const int64_t bytes = (end - begin) * static_cast<int64_t>(sizeof(T));
  if (bytes <= 0 || bytes > kPrefetchMaxBytes) return;
  const char* first = reinterpret_cast<const char*>(base + begin);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(first + b);
#else
  (void)base, (void)begin, (void)count, (void)total;
#endif
}

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
