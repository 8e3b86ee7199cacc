// The activation's parameters, shared by the CUDA kernels and their CPU
// emulation (tests/cuda_emulation/): CONDGAN_HD marks functions that compile
// for the device under nvcc and as plain inline C++ elsewhere.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define CONDGAN_HD __host__ __device__ __forceinline__
#else
#define CONDGAN_HD inline
#endif

namespace condgan::cuda {

// y = gain * leaky_relu(z); the gradient factor is read off the output's sign
// (see csrc/cpu/leaky.h).
template <typename acc_t>
struct LeakyParams {
  acc_t gain, gain_slope;
  bool gain_positive;
  CONDGAN_HD acc_t act(acc_t z) const { return z > acc_t(0) ? z * gain : z * gain_slope; }
  CONDGAN_HD acc_t grad(acc_t g, acc_t y) const {
    const bool positive = gain_positive ? y > acc_t(0) : y < acc_t(0);
    return g * (positive ? gain : gain_slope);
  }
};

template <typename acc_t>
inline LeakyParams<acc_t> leaky_params(double slope, double gain) {
  return {acc_t(gain), acc_t(gain * slope), gain > 0};
}

}  // namespace condgan::cuda
