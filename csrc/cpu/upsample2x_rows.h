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

// Bilinear NCHW rows are separable: a vertical mix of the input rows into a
// short buffer (one pass over each row, clamped at the row's ends), then a
// horizontal pass over that buffer, which sits in L1. Columns go in chunks of
// kChunk so the buffers live on the stack. The arithmetic order matches the
// reference: vertical weights first, then horizontal.
constexpr int64_t kChunk = 512;

// out[m] = sum_a w[a] * rows[a][clamp(start + m, 0, len - 1)] for m in [0, count).
template <typename scalar_t, int R, typename in_t, typename acc_t>
void vertical_mix(const in_t* const (&rows)[R], const acc_t (&w)[R], int64_t start, int64_t count, int64_t len,
                  acc_t* out) {
  using B = Blocks<scalar_t>;
  using Vec = typename B::Vec;
  constexpr int P = B::P;
  auto scalar = [&](int64_t m) {
    const int64_t col = std::clamp<int64_t>(start + m, 0, len - 1);
    acc_t v = w[0] * ld<acc_t>(rows[0], col);
    for (int a = 1; a < R; ++a) v += w[a] * ld<acc_t>(rows[a], col);
    out[m] = v;
  };
  // m in [lo, hi) reads columns inside the row: no clamping, vectorised.
  const int64_t lo = std::min<int64_t>(count, std::max<int64_t>(0, -start));
  const int64_t hi = std::max<int64_t>(lo, std::min<int64_t>(count, len - start));
  for (int64_t m = 0; m < lo; ++m) scalar(m);
  int64_t m = lo;
  for (; m + B::kStep <= hi; m += B::kStep) {
    Vec acc[P], v[P];
    B::load(rows[0] + start + m, acc);
    for (int k = 0; k < P; ++k) acc[k] = Vec(w[0]) * acc[k];
    for (int a = 1; a < R; ++a) {
      B::load(rows[a] + start + m, v);
      for (int k = 0; k < P; ++k) acc[k] = acc[k] + Vec(w[a]) * v[k];
    }
    B::store(out + m, acc);
  }
  for (; m < count; ++m) scalar(m);
}

// Output rows 2i (y0) and 2i+1 (y1) from input rows i-1 (up), i, i+1 (dn).
template <typename scalar_t, typename in_t, typename out_t>
void bilinear_fwd_row(const in_t* up, const in_t* mid, const in_t* dn, out_t* y0, out_t* y1, int64_t W) {
  using B = Blocks<scalar_t>;
  using acc_t = typename B::acc_t;
  using Vec = typename B::Vec;
  constexpr int P = B::P;
  const acc_t q = acc_t(0.25), t = acc_t(0.75);
  const in_t* const top[2] = {up, mid};
  const in_t* const bottom[2] = {mid, dn};
  const acc_t wt[2] = {q, t}, wb[2] = {t, q};
  acc_t even_rows[kChunk + 2], odd_rows[kChunk + 2];  // vertical mixes for y0 and y1, columns c0-1 .. c0+n
  for (int64_t c0 = 0; c0 < W; c0 += kChunk) {
    const int64_t n = std::min<int64_t>(kChunk, W - c0);
    vertical_mix<scalar_t>(top, wt, c0 - 1, n + 2, W, even_rows);
    vertical_mix<scalar_t>(bottom, wb, c0 - 1, n + 2, W, odd_rows);
    int64_t j = 0;
    for (; j + B::kStep <= n; j += B::kStep) {
      for (int r = 0; r < 2; ++r) {
        const acc_t* v = r ? odd_rows : even_rows;
        Vec l[P], m[P], rt[P], ev[P], od[P];
        B::load(v + j, l);
        B::load(v + j + 1, m);
        B::load(v + j + 2, rt);
        for (int k = 0; k < P; ++k) { ev[k] = Vec(q) * l[k] + Vec(t) * m[k]; od[k] = Vec(t) * m[k] + Vec(q) * rt[k]; }
        B::store_interleaved((r ? y1 : y0) + 2 * (c0 + j), ev, od);
      }
    }
    for (; j < n; ++j)
      for (int r = 0; r < 2; ++r) {
        const acc_t* v = r ? odd_rows : even_rows;
        out_t* y = (r ? y1 : y0) + 2 * (c0 + j);
        y[0] = static_cast<out_t>(q * v[j] + t * v[j + 1]);
        y[1] = static_cast<out_t>(t * v[j + 1] + q * v[j + 2]);
      }
  }
}

// dx row i from output rows 2i-1, 2i, 2i+1, 2i+2 (clamped), each 2W long:
// dx[j] = 1/4 (V[2j-1] + V[2j+2]) + 3/4 (V[2j] + V[2j+1]), V the rows mixed
// vertically with (1/4, 3/4, 3/4, 1/4), columns clamped to the row.
template <typename scalar_t, typename in_t, typename out_t>
void bilinear_bwd_row(const in_t* const rows[4], out_t* dx, int64_t W) {
  using B = Blocks<scalar_t>;
  using acc_t = typename B::acc_t;
  using Vec = typename B::Vec;
  constexpr int P = B::P;
  const acc_t q = acc_t(0.25), t = acc_t(0.75);
  const in_t* const rs[4] = {rows[0], rows[1], rows[2], rows[3]};
  const acc_t w[4] = {q, t, t, q};
  acc_t mixed[2 * kChunk + 2];  // columns 2c0-1 .. 2(c0+n)
  for (int64_t c0 = 0; c0 < W; c0 += kChunk) {
    const int64_t n = std::min<int64_t>(kChunk, W - c0);
    vertical_mix<scalar_t>(rs, w, 2 * c0 - 1, 2 * n + 2, 2 * W, mixed);
    int64_t j = 0;
    for (; j + B::kStep <= n; j += B::kStep) {
      Vec before[P], at0[P], at1[P], after[P];
      B::load_deinterleaved(mixed + 2 * j, before, at0);     // V[2j-1], V[2j]
      B::load_deinterleaved(mixed + 2 * j + 2, at1, after);  // V[2j+1], V[2j+2]
      for (int k = 0; k < P; ++k) before[k] = Vec(q) * (before[k] + after[k]) + Vec(t) * (at0[k] + at1[k]);
      B::store(dx + c0 + j, before);
    }
    for (; j < n; ++j) {
      const acc_t* v = mixed + 2 * j;
      dx[c0 + j] = static_cast<out_t>(q * (v[0] + v[3]) + t * (v[1] + v[2]));
    }
  }
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
