// Vectorised leaky ReLU pieces shared by the bias_leaky_relu and fused
// upsample kernels.
#pragma once
#include <vector>

#include "vec_io.h"

namespace condgan::cpu {

// gain * leaky_relu(z), via leaky_relu(z) = max(z, 0) + slope * min(z, 0).
template <typename acc_t>
struct Leaky {
  using Vec = Vectorized<acc_t>;
  Vec gain, gain_slope, zero{acc_t(0)};
  acc_t g, gs;
  Leaky(double gain_, double slope) : gain(acc_t(gain_)), gain_slope(acc_t(gain_ * slope)),
                                      g(acc_t(gain_)), gs(acc_t(gain_ * slope)) {}
  Vec operator()(const Vec& z) const {
    return at::vec::maximum(z, zero) * gain + at::vec::minimum(z, zero) * gain_slope;
  }
  acc_t operator()(acc_t z) const { return z > 0 ? z * g : z * gs; }
};

// d/dz of gain * leaky_relu(z), read off the output's sign: y > 0 exactly
// where z > 0 when gain > 0 (y < 0 when gain < 0). Requires slope >= 0; the
// Python side sends negative slopes to the reference path.
template <typename acc_t>
struct LeakyGrad {
  using Vec = Vectorized<acc_t>;
  Vec gain, gain_slope, zero{acc_t(0)};
  acc_t g, gs;
  bool gain_positive;
  LeakyGrad(double gain_, double slope) : gain(acc_t(gain_)), gain_slope(acc_t(gain_ * slope)),
                                          g(acc_t(gain_)), gs(acc_t(gain_ * slope)), gain_positive(gain_ > 0) {}
  Vec operator()(const Vec& grad, const Vec& y) const {
    const Vec positive = gain_positive ? (y > zero) : (y < zero);
    return grad * Vec::blendv(gain_slope, gain, positive);
  }
  acc_t operator()(acc_t grad, acc_t y) const {
    return grad * ((gain_positive ? y > 0 : y < 0) ? g : gs);
  }
};

// Bias (or zeros) converted once to the compute type and padded to whole
// vectors, so channel loops can always load full vectors.
template <typename scalar_t>
std::vector<acc_type<scalar_t>> padded_bias(const scalar_t* bias, int64_t channels) {
  const int64_t step = VecIO<scalar_t>::kStep;
  std::vector<acc_type<scalar_t>> out(((channels + step - 1) / step) * step, 0);
  if (bias != nullptr)
    for (int64_t c = 0; c < channels; ++c) out[c] = static_cast<acc_type<scalar_t>>(bias[c]);
  return out;
}

}  // namespace condgan::cpu
