// Shared pieces of the CUDA kernels: launch shapes, the compute type, a
// block-wide sum and (from leaky_params.cuh) the activation. Arithmetic runs in at::opmath_type (float for half and
// bfloat16, double for double), as on the CPU side.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "leaky_params.cuh"

namespace condgan::cuda {

constexpr int kThreads = 256;

inline int blocks_for(int64_t n) {
  // Grid-stride loops cover the rest; the cap keeps the grid a legal size.
  return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535LL * 8));
}

inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

template <typename T>
__device__ inline T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block; the result is valid in thread 0.
template <typename T>
__device__ inline T block_sum(T v) {
  __shared__ T per_warp[kThreads / 32];
  v = warp_sum(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) per_warp[warp] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? per_warp[lane] : T(0);
  if (warp == 0) v = warp_sum(v);
  return v;
}

}  // namespace condgan::cuda
