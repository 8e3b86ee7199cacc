// Host-side helpers shared by the CPU and CUDA kernels: argument checks and
// the (outer, channels, inner) view that lets one flat loop serve contiguous,
// channels_last and any other dense layout without copying.
#pragma once
#include <ATen/ATen.h>
#include <ATen/WrapDimUtils.h>
#include <string>

namespace condgan {

// A dense tensor viewed in memory order as [outer, channels, inner]: element
// at memory offset o belongs to channel (o / inner) % channels.
struct ChannelLayout {
  int64_t outer;
  int64_t channels;
  int64_t inner;
};

// Dense (permuted-contiguous) tensors are used as they are, which keeps their
// memory format; anything else is made contiguous in its suggested format.
inline at::Tensor dense(const at::Tensor& t) {
  if (t.is_non_overlapping_and_dense()) return t;
  return t.contiguous(t.suggest_memory_format());
}

// Copy of `t` laid out exactly like the dense tensor `like` (no copy when the
// strides already agree), so that paired tensors can be walked with one index.
inline at::Tensor like_layout(const at::Tensor& t, const at::Tensor& like) {
  if (t.strides() == like.strides()) return t;
  at::Tensor out = at::empty_like(like);
  out.copy_(t);
  return out;
}

inline ChannelLayout channel_layout(const at::Tensor& t, int64_t dim) {
  const int64_t numel = t.numel();
  const int64_t channels = t.size(dim);
  if (channels <= 1 || numel == 0) return {1, 1, numel};
  // For a dense tensor the stride of a dimension with size > 1 equals the
  // number of elements of all dimensions stored inside it.
  const int64_t inner = t.stride(dim);
  return {numel / (channels * inner), channels, inner};
}

inline int64_t check_bias_args(const at::Tensor& x, const c10::optional<at::Tensor>& bias, int64_t dim) {
  // Without a bias, `dim` is unused (as in the reference) and not checked.
  if (!bias.has_value() || !bias->defined()) return 0;
  TORCH_CHECK(x.dim() >= 1, "bias_leaky_relu: x must have at least one dimension");
  const int64_t d = at::maybe_wrap_dim(dim, x.dim());
  {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == x.size(d),
                "bias_leaky_relu: bias must have shape [", x.size(d), "], got ", bias->sizes());
    TORCH_CHECK(bias->scalar_type() == x.scalar_type(), "bias_leaky_relu: bias dtype must match x");
    TORCH_CHECK(bias->device() == x.device(), "bias_leaky_relu: bias must be on x's device");
  }
  return d;
}

// 0 = nearest, 1 = bilinear (align_corners=False).
inline int upsample_mode(const std::string& mode) {
  if (mode == "nearest") return 0;
  if (mode == "bilinear") return 1;
  TORCH_CHECK(false, "upsample2x: mode must be 'nearest' or 'bilinear', got '", mode, "'");
}

inline void check_upsample_input(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.dim() == 4, name, ": expected a 4-D (N, C, H, W) tensor, got ", x.dim(), "-D");
}

// channels_last only when unambiguous: a tensor that is also contiguous
// (e.g. 1x1 spatial) is walked as NCHW.
inline bool is_channels_last(const at::Tensor& t) {
  return t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace condgan
