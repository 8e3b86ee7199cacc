// Loads and stores between storage dtype and compute dtype for the CPU
// kernels. Arithmetic runs in float for float/half/bfloat16 storage and in
// double for double, so reduced-precision inputs are rounded exactly once.
#pragma once
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

namespace condgan::cpu {

using at::vec::Vectorized;

// VecIO<T> moves kStep storage elements as kParts compute vectors.
template <typename T>
struct VecIO {
  using acc_t = T;
  using Vec = Vectorized<T>;
  static constexpr int kParts = 1;
  static constexpr int64_t kStep = Vec::size();
  static void load(const T* p, Vec* v) { v[0] = Vec::loadu(p); }
  static void load(const T* p, Vec* v, int64_t n) { v[0] = Vec::loadu(p, n); }
  static void store(T* p, const Vec* v) { v[0].store(p); }
  static void store(T* p, const Vec* v, int64_t n) { v[0].store(p, static_cast<int>(n)); }
};

template <typename T>
struct ReducedVecIO {
  using acc_t = float;
  using Vec = Vectorized<float>;
  static constexpr int kParts = 2;
  static constexpr int64_t kStep = Vectorized<T>::size();
  static void load(const T* p, Vec* v) {
    auto both = at::vec::convert_to_float<T>(Vectorized<T>::loadu(p));
    v[0] = std::get<0>(both);
    v[1] = std::get<1>(both);
  }
  static void load(const T* p, Vec* v, int64_t n) {
    auto both = at::vec::convert_to_float<T>(Vectorized<T>::loadu(p, n));
    v[0] = std::get<0>(both);
    v[1] = std::get<1>(both);
  }
  static void store(T* p, const Vec* v) { at::vec::convert_from_float<T>(v[0], v[1]).store(p); }
  static void store(T* p, const Vec* v, int64_t n) {
    at::vec::convert_from_float<T>(v[0], v[1]).store(p, static_cast<int>(n));
  }
};

template <>
struct VecIO<c10::Half> : ReducedVecIO<c10::Half> {};
template <>
struct VecIO<c10::BFloat16> : ReducedVecIO<c10::BFloat16> {};

template <typename T>
using acc_type = typename VecIO<T>::acc_t;

// Work per parallel task, in elements: large enough to amortise scheduling,
// small enough to balance two or more threads on mid-sized tensors.
constexpr int64_t kGrainElems = 32768;

inline int64_t grain_rows(int64_t row_elems) {
  return std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, row_elems));
}

}  // namespace condgan::cpu
