// Row kernels for 2x upsampling on CPU. One call handles one input row and
// the two output rows it produces (forward) or gathers from (backward).
//
// Bilinear with align_corners=False at scale 2 has fixed weights: output 2j
// mixes inputs (j-1, j) as (1/4, 3/4), output 2j+1 mixes (j, j+1) as
// (3/4, 1/4), indices clamped at the border. Its adjoint gathers outputs
// 2j-1, 2j, 2j+1, 2j+2 (clamped) with weights (1/4, 3/4, 3/4, 1/4).
//
// NCHW rows are vectorised along W (interleave / deinterleave for the 2x
// pattern); channels_last rows along C. Input and output pointers may be the
// storage type or the compute type (the fused op feeds activated rows held in
// the compute type).
#pragma once
#include <algorithm>
#include <type_traits>

#include "vec_io.h"

namespace condgan::cpu {

template <typename scalar_t>
struct Blocks {
  using IO = VecIO<scalar_t>;
  using acc_t = typename IO::acc_t;
  using Vec = typename IO::Vec;
  static constexpr int P = IO::kParts;
  static constexpr int64_t kStep = IO::kStep;
  static constexpr int64_t V = Vec::size();

  template <typename T>
  static void load(const T* p, Vec* v, int64_t n = kStep) {
    if constexpr (std::is_same_v<T, scalar_t>) {
      if (n == kStep) IO::load(p, v); else IO::load(p, v, n);
    } else {
      for (int k = 0; k < P; ++k) v[k] = Vec::loadu(p + k * V, std::clamp<int64_t>(n - k * V, 0, V));
    }
  }
  template <typename T>
  static void store(T* p, const Vec* v, int64_t n = kStep) {
    if constexpr (std::is_same_v<T, scalar_t>) {
      if (n == kStep) IO::store(p, v); else IO::store(p, v, n);
    } else {
      for (int k = 0; k < P; ++k)
        if (n > k * V) v[k].store(p + k * V, static_cast<int>(std::min<int64_t>(V, n - k * V)));
    }
  }
  // 2 * kStep consecutive elements split into even and odd positions.
  template <typename T>
  static void load_deinterleaved(const T* p, Vec* even, Vec* odd) {
    Vec seq[2 * P];
    load(p, seq);
    load(p + kStep, seq + P);
    for (int k = 0; k < P; ++k) std::tie(even[k], odd[k]) = at::vec::deinterleave2(seq[2 * k], seq[2 * k + 1]);
  }
  template <typename T>
  static void store_interleaved(T* p, const Vec* even, const Vec* odd) {
    Vec seq[2 * P];
    for (int k = 0; k < P; ++k) std::tie(seq[2 * k], seq[2 * k + 1]) = at::vec::interleave2(even[k], odd[k]);
    store(p, seq);
    store(p + kStep, seq + P);
  }
};

template <typename acc_t, typename T>
inline acc_t ld(const T* p, int64_t i) { return static_cast<acc_t>(p[i]); }

// ---------------------------------------------------------------- NCHW rows
template <typename scalar_t, typename in_t, typename out_t>
void nearest_fwd_row(const in_t* x, out_t* y0, out_t* y1, int64_t W) {
  using B = Blocks<scalar_t>;
  typename B::Vec v[B::P];
  int64_t j = 0;
  for (; j + B::kStep <= W; j += B::kStep) {
    B::load(x + j, v);
    B::store_interleaved(y0 + 2 * j, v, v);
    B::store_interleaved(y1 + 2 * j, v, v);
  }
  for (; j < W; ++j) {
    const out_t a = static_cast<out_t>(ld<typename B::acc_t>(x, j));
    y0[2 * j] = y0[2 * j + 1] = y1[2 * j] = y1[2 * j + 1] = a;
  }
}

template <typename scalar_t, typename in_t, typename out_t>
void nearest_bwd_row(const in_t* g0, const in_t* g1, out_t* dx, int64_t W) {
  using B = Blocks<scalar_t>;
  using acc_t = typename B::acc_t;
  typename B::Vec e0[B::P], o0[B::P], e1[B::P], o1[B::P];
  int64_t j = 0;
  for (; j + B::kStep <= W; j += B::kStep) {
    B::load_deinterleaved(g0 + 2 * j, e0, o0);
    B::load_deinterleaved(g1 + 2 * j, e1, o1);
    for (int k = 0; k < B::P; ++k) e0[k] = (e0[k] + o0[k]) + (e1[k] + o1[k]);
    B::store(dx + j, e0);
  }
  for (; j < W; ++j)
    dx[j] = static_cast<out_t>((ld<acc_t>(g0, 2 * j) + ld<acc_t>(g0, 2 * j + 1)) +
                               (ld<acc_t>(g1, 2 * j) + ld<acc_t>(g1, 2 * j + 1)));
}

// Output rows 2i (y0) and 2i+1 (y1) from input rows i-1 (up), i, i+1 (dn).
template <typename scalar_t, typename in_t, typename out_t>
void bilinear_fwd_row(const in_t* up, const in_t* mid, const in_t* dn, out_t* y0, out_t* y1, int64_t W) {
  using B = Blocks<scalar_t>;
  using acc_t = typename B::acc_t;
  using Vec = typename B::Vec;
  constexpr int P = B::P;
  const Vec q(acc_t(0.25)), t(acc_t(0.75));
  auto scalar = [&](int64_t j) {
    const int64_t l = std::max<int64_t>(j - 1, 0), r = std::min<int64_t>(j + 1, W - 1);
    const acc_t m = ld<acc_t>(mid, j), ml = ld<acc_t>(mid, l), mr = ld<acc_t>(mid, r);
    const acc_t e = acc_t(0.25) * ld<acc_t>(up, j) + acc_t(0.75) * m;
    const acc_t el = acc_t(0.25) * ld<acc_t>(up, l) + acc_t(0.75) * ml;
    const acc_t er = acc_t(0.25) * ld<acc_t>(up, r) + acc_t(0.75) * mr;
    const acc_t o = acc_t(0.75) * m + acc_t(0.25) * ld<acc_t>(dn, j);
    const acc_t ol = acc_t(0.75) * ml + acc_t(0.25) * ld<acc_t>(dn, l);
    const acc_t orr = acc_t(0.75) * mr + acc_t(0.25) * ld<acc_t>(dn, r);
    y0[2 * j] = static_cast<out_t>(acc_t(0.25) * el + acc_t(0.75) * e);
    y0[2 * j + 1] = static_cast<out_t>(acc_t(0.75) * e + acc_t(0.25) * er);
    y1[2 * j] = static_cast<out_t>(acc_t(0.25) * ol + acc_t(0.75) * o);
    y1[2 * j + 1] = static_cast<out_t>(acc_t(0.75) * o + acc_t(0.25) * orr);
  };
  if (W > 0) scalar(0);
  int64_t j = 1;
  // Vector blocks read columns j-1 .. j+kStep, all inside the row.
  for (; j + B::kStep + 1 <= W; j += B::kStep) {
    Vec re[3][P], ro[3][P], u[P], m[P], d[P];
    for (int s = 0; s < 3; ++s) {
      B::load(up + j + s - 1, u);
      B::load(mid + j + s - 1, m);
      B::load(dn + j + s - 1, d);
      for (int k = 0; k < P; ++k) {
        re[s][k] = q * u[k] + t * m[k];
        ro[s][k] = t * m[k] + q * d[k];
      }
    }
    Vec ev[P], od[P];
    for (int k = 0; k < P; ++k) { ev[k] = q * re[0][k] + t * re[1][k]; od[k] = t * re[1][k] + q * re[2][k]; }
    B::store_interleaved(y0 + 2 * j, ev, od);
    for (int k = 0; k < P; ++k) { ev[k] = q * ro[0][k] + t * ro[1][k]; od[k] = t * ro[1][k] + q * ro[2][k]; }
    B::store_interleaved(y1 + 2 * j, ev, od);
  }
  for (; j < W; ++j) scalar(j);
}

// dx row i from output rows 2i-1, 2i, 2i+1, 2i+2 (clamped), each 2W long.
template <typename scalar_t, typename in_t, typename out_t>
void bilinear_bwd_row(const in_t* const rows[4], out_t* dx, int64_t W) {
  using B = Blocks<scalar_t>;
  using acc_t = typename B::acc_t;
  using Vec = typename B::Vec;
  constexpr int P = B::P;
  const acc_t w[4] = {acc_t(0.25), acc_t(0.75), acc_t(0.75), acc_t(0.25)};
  auto scalar = [&](int64_t j) {
    acc_t total = 0;
    for (int b = 0; b < 4; ++b) {
      const int64_t col = std::clamp<int64_t>(2 * j - 1 + b, 0, 2 * W - 1);
      acc_t v = 0;
      for (int a = 0; a < 4; ++a) v += w[a] * ld<acc_t>(rows[a], col);
      total += w[b] * v;
    }
    dx[j] = static_cast<out_t>(total);
  };
  // Column-mixed vertical sums at 2j+off, split into even / odd positions.
  auto gather = [&](int64_t start, Vec* even, Vec* odd) {
    Vec seq[2 * P], tmp[2 * P];
    for (int k = 0; k < 2 * P; ++k) seq[k] = Vec(acc_t(0));
    for (int a = 0; a < 4; ++a) {
      B::load(rows[a] + start, tmp);
      B::load(rows[a] + start + B::kStep, tmp + P);
      for (int k = 0; k < 2 * P; ++k) seq[k] = seq[k] + Vec(w[a]) * tmp[k];
    }
    for (int k = 0; k < P; ++k) std::tie(even[k], odd[k]) = at::vec::deinterleave2(seq[2 * k], seq[2 * k + 1]);
  };
  if (W > 0) scalar(0);
  int64_t j = 1;
  for (; j + B::kStep + 1 <= W; j += B::kStep) {
    Vec prev_odd[P], even[P], odd[P], next_even[P];
    gather(2 * j - 1, prev_odd, even);
    gather(2 * j + 1, odd, next_even);
    for (int k = 0; k < P; ++k)
      even[k] = Vec(w[0]) * (prev_odd[k] + next_even[k]) + Vec(w[1]) * (even[k] + odd[k]);
    B::store(dx + j, even);
  }
  for (; j < W; ++j) scalar(j);
}

// ------------------------------------------------------- channels_last rows
// Rows hold W pixels of C channels; pixel j starts at j * C.
template <typename scalar_t, typename F>
inline void for_channel_blocks(int64_t C, F&& f) {
  constexpr int64_t step = Blocks<scalar_t>::kStep;
  for (int64_t c = 0; c < C; c += step) f(c, std::min<int64_t>(step, C - c));
}

template <typename scalar_t, typename in_t, typename out_t>
void nearest_fwd_row_cl(const in_t* x, out_t* y0, out_t* y1, int64_t W, int64_t C) {
  using B = Blocks<scalar_t>;
  typename B::Vec v[B::P];
  for (int64_t j = 0; j < W; ++j)
    for_channel_blocks<scalar_t>(C, [&](int64_t c, int64_t n) {
      B::load(x + j * C + c, v, n);
      for (out_t* y : {y0, y1}) {
        B::store(y + 2 * j * C + c, v, n);
        B::store(y + (2 * j + 1) * C + c, v, n);
      }
    });
}

template <typename scalar_t, typename in_t, typename out_t>
void nearest_bwd_row_cl(const in_t* g0, const in_t* g1, out_t* dx, int64_t W, int64_t C) {
  using B = Blocks<scalar_t>;
  typename B::Vec a[B::P], b[B::P], c2[B::P], d[B::P];
  for (int64_t j = 0; j < W; ++j)
    for_channel_blocks<scalar_t>(C, [&](int64_t c, int64_t n) {
      B::load(g0 + 2 * j * C + c, a, n);
      B::load(g0 + (2 * j + 1) * C + c, b, n);
      B::load(g1 + 2 * j * C + c, c2, n);
      B::load(g1 + (2 * j + 1) * C + c, d, n);
      for (int k = 0; k < B::P; ++k) a[k] = (a[k] + b[k]) + (c2[k] + d[k]);
      B::store(dx + j * C + c, a, n);
    });
}

template <typename scalar_t, typename in_t, typename out_t>
void bilinear_fwd_row_cl(const in_t* up, const in_t* mid, const in_t* dn, out_t* y0, out_t* y1,
                         int64_t W, int64_t C) {
  using B = Blocks<scalar_t>;
  using acc_t = typename B::acc_t;
  using Vec = typename B::Vec;
  constexpr int P = B::P;
  const Vec q(acc_t(0.25)), t(acc_t(0.75));
  for (int64_t j = 0; j < W; ++j) {
    const int64_t cols[3] = {std::max<int64_t>(j - 1, 0), j, std::min<int64_t>(j + 1, W - 1)};
    for_channel_blocks<scalar_t>(C, [&](int64_t c, int64_t n) {
      Vec re[3][P], ro[3][P], u[P], m[P], d[P];
      for (int s = 0; s < 3; ++s) {
        B::load(up + cols[s] * C + c, u, n);
        B::load(mid + cols[s] * C + c, m, n);
        B::load(dn + cols[s] * C + c, d, n);
        for (int k = 0; k < P; ++k) {
          re[s][k] = q * u[k] + t * m[k];
          ro[s][k] = t * m[k] + q * d[k];
        }
      }
      Vec out[P];
      for (int k = 0; k < P; ++k) out[k] = q * re[0][k] + t * re[1][k];
      B::store(y0 + 2 * j * C + c, out, n);
      for (int k = 0; k < P; ++k) out[k] = t * re[1][k] + q * re[2][k];
      B::store(y0 + (2 * j + 1) * C + c, out, n);
      for (int k = 0; k < P; ++k) out[k] = q * ro[0][k] + t * ro[1][k];
      B::store(y1 + 2 * j * C + c, out, n);
      for (int k = 0; k < P; ++k) out[k] = t * ro[1][k] + q * ro[2][k];
      B::store(y1 + (2 * j + 1) * C + c, out, n);
    });
  }
}

template <typename scalar_t, typename in_t, typename out_t>
void bilinear_bwd_row_cl(const in_t* const rows[4], out_t* dx, int64_t W, int64_t C) {
  using B = Blocks<scalar_t>;
  using acc_t = typename B::acc_t;
  using Vec = typename B::Vec;
  constexpr int P = B::P;
  const acc_t w[4] = {acc_t(0.25), acc_t(0.75), acc_t(0.75), acc_t(0.25)};
  for (int64_t j = 0; j < W; ++j) {
    int64_t cols[4];
    for (int b = 0; b < 4; ++b) cols[b] = std::clamp<int64_t>(2 * j - 1 + b, 0, 2 * W - 1);
    for_channel_blocks<scalar_t>(C, [&](int64_t c, int64_t n) {
      Vec total[P], v[P];
      for (int k = 0; k < P; ++k) total[k] = Vec(acc_t(0));
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) {
          B::load(rows[a] + cols[b] * C + c, v, n);
          for (int k = 0; k < P; ++k) total[k] = total[k] + Vec(w[a] * w[b]) * v[k];
        }
      B::store(dx + j * C + c, total, n);
    });
  }
}

}  // namespace condgan::cpu
