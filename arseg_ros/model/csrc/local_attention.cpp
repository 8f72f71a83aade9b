// Fused CPU kernel for CReFF's local attention (forward and backward), exposed to Python with pybind11.
//
// Semantics (same as ``local_attention_reference`` in creff.py): for every position p of an H x W image and
// every offset o of the centred window x window neighbourhood (row-major, dy outer, dx inner),
//   logit[p, o] = scale * sum_c q[c, p] * k[c, p + o]      (k = 0 outside the image, so the logit is 0)
//   attn[p, :]  = softmax(logit[p, :])                      (over all window**2 offsets, borders included)
//   out[c, p]   = sum_o attn[p, o] * v[c, p + o]            (v = 0 outside the image)
//
// Strategy. The kernels (local_attention_kernels.h) vectorise across a tile of consecutive positions of one
// image row, so logits, softmax and weighted sums are computed lane-wise without horizontal reductions.
// Channels-first inputs are read in place: window rows outside the image are skipped, and tiles whose window
// crosses the left or right edge read a small zero-filled copy, so every read is in bounds and an outside
// neighbour gives exactly the reference's logit 0 / value 0. Channels-last K and V go through per-thread rings of
// transposed, zero-padded rows in the forward pass, and through zero-padded channels-first copies in the backward
// pass. The backward pass computes grad_k and grad_v as gathers over padded copies of the softmax weights and of
// dlogit (no scattered writes), so threads never write the same element.
//
// The module also holds the fused CReFF inference pass (creff_forward, forward only, float32 channels-last):
// upsampling, warp, depthwise Q/K/V convolutions, local attention and residual over cache-sized column strips
// (see the end of local_attention_kernels.h).
//
// SIMD: the kernels are compiled three times, as 16-byte generic vectors (SSE2 on any x86_64, NEON on aarch64)
// and, on x86_64 with GCC or Clang, as 32-byte vectors in an AVX2+FMA target region and 64-byte vectors in an
// AVX-512 (F, DQ, BW, VL) target region, the best one the CPU supports chosen at run time. No -march flag is
// needed, so the binary runs on any CPU of its architecture.
// Work is split over image rows between std::threads; the GIL is released while they run. Inputs may be
// channels-first (N, C, H, W) or channels-last (N, H, W, C), as C-contiguous arrays; outputs use the layout of
// the inputs.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace py = pybind11;

// Generic vectors are only passed between functions of this file, so GCC's note about the vector ABI is irrelevant.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace {

using Index = std::int64_t;
// Image geometry shared by all kernels.
struct Geometry {
  Index n = 0, c = 0, h = 0, w = 0;  // batch, channels, rows, columns
  int window = 1;                    // odd window size
  Index r = 0;                       // window / 2
  Index ww = 1;                      // window * window offsets
  Index hp = 0;                      // padded rows: h + 2r
  Index tiles = 0;                   // tiles per image row: ceil(w / lanes), set per instruction set
  Index wpad = 0;                    // padded row length: tiles * lanes + 2r, set per instruction set
  bool channels_last = false;        // layout of the user's arrays

  // Element offset of (image b, padded row, channel ch, padded column col) in a padded buffer of `depth` channels.
  Index padded(Index b, Index row, Index depth, Index ch, Index col) const {
    return ((b * hp + row) * depth + ch) * wpad + col;
  }
  Index padded_size(Index depth) const { return n * hp * depth * wpad; }
};

// Runs fn(worker, begin, end) on contiguous slices of [0, count) with at most `threads` threads (the caller's
// thread takes slice 0). fn must not throw. Slices run by the caller's thread all use worker 0, one at a time.
// If the system refuses to start a thread, the caller's thread runs the slices left over.
void parallel_for(Index count, Index threads, const std::function<void(Index, Index, Index)>& fn) {
  if (count <= 0) return;
  const Index workers = std::max<Index>(1, std::min(threads, count));
  const auto slice_begin = [&](Index i) { return count * i / workers; };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(workers - 1));
  Index started = 1;
  try {
    for (; started < workers; ++started) pool.emplace_back(fn, started, slice_begin(started), slice_begin(started + 1));
  } catch (const std::system_error&) {
    // Fewer threads than asked for: the remaining slices run below.
  }
  fn(0, 0, slice_begin(1));
  for (Index i = started; i < workers; ++i) fn(0, slice_begin(i), slice_begin(i + 1));
  for (auto& t : pool) t.join();
}

// Uninitialised buffer of `size` elements (every element is written before it is read).
template <typename T>
std::unique_ptr<T[]> buffer(Index size) {
  return std::unique_ptr<T[]>(new T[static_cast<size_t>(std::max<Index>(size, 1))]);
}

// Copies a user array of `depth` channels (in the user's layout when `user_layout`, else channels-first)
// into a zero-padded (N, Hp, depth, Wpad) buffer.
template <typename T>
void pad(const T* src, const Geometry& g, Index depth, bool user_layout, T* dst, Index threads) {
  const bool channels_last = user_layout && g.channels_last;
  parallel_for(g.n * g.hp, threads, [&](Index, Index begin, Index end) {
    for (Index i = begin; i < end; ++i) {
      const Index b = i / g.hp;
      const Index row = i % g.hp;
      T* out = dst + g.padded(b, row, depth, 0, 0);
      const Index y = row - g.r;
      if (y < 0 || y >= g.h) {
        std::fill(out, out + depth * g.wpad, T(0));
        continue;
      }
      for (Index ch = 0; ch < depth; ++ch) {
        T* o = out + ch * g.wpad;
        std::fill(o, o + g.r, T(0));
        std::fill(o + g.r + g.w, o + g.wpad, T(0));
        if (!channels_last) {
          const T* s = src + ((b * depth + ch) * g.h + y) * g.w;
          std::copy(s, s + g.w, o + g.r);
        }
      }
      if (channels_last) {
        const T* s = src + (b * g.h + y) * g.w * depth;
        for (Index x = 0; x < g.w; ++x) {
          for (Index ch = 0; ch < depth; ++ch) out[ch * g.wpad + g.r + x] = s[x * depth + ch];
        }
      }
    }
  });
}

// Per-call constants of the fused CReFF: sizes, the upsampling look-up tables and the convolution weights.
template <typename T>
struct CreffPlan {
  Geometry g;                         // the output (keyframe-feature) grid; tiles and wpad are unused
  Index lr_h = 0, lr_w = 0;       // LR feature size
  Index strip = 0;                // strip width in columns (a multiple of kLanes<T>)
  Index strips = 0, bands = 0;    // strips per image, bands of rows per image
  std::vector<Index> y0, y1, x0, x1;  // upsampling source rows / columns per output row / column
  std::vector<T> ly, lx;              // weight of y1 / x1
  const T *wq, *bq, *wk, *bk, *wv, *bv;  // depthwise weights (C x 9) and biases (C)
};

// Source indices and weights of an align_corners=True bilinear resize from `in` to `out` samples, as PyTorch
// computes them: scale (in - 1) / (out - 1), source i0 = floor(scale * j), i1 = i0 + 1 unless at the end.
template <typename T>
void upsample_table(Index in, Index out, std::vector<Index>& i0, std::vector<Index>& i1, std::vector<T>& lambda) {
  const T scale = out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  i0.resize(static_cast<size_t>(out));
  i1.resize(static_cast<size_t>(out));
  lambda.resize(static_cast<size_t>(out));
  for (Index j = 0; j < out; ++j) {
    const T src = scale * static_cast<T>(j);
    const Index lo = std::min<Index>(static_cast<Index>(src), in - 1);
    i0[static_cast<size_t>(j)] = lo;
    i1[static_cast<size_t>(j)] = lo < in - 1 ? lo + 1 : lo;
    lambda[static_cast<size_t>(j)] = src - static_cast<T>(lo);
  }
}

namespace generic {
#define ARSEG_VECTOR_BYTES 16
#include "local_attention_kernels.h"
#undef ARSEG_VECTOR_BYTES
}  // namespace generic

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ARSEG_HAVE_AVX2 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace avx2 {
#define ARSEG_VECTOR_BYTES 32
#include "local_attention_kernels.h"
#undef ARSEG_VECTOR_BYTES
}  // namespace avx2
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
#endif
namespace avx512 {
#define ARSEG_VECTOR_BYTES 64
#include "local_attention_kernels.h"
#undef ARSEG_VECTOR_BYTES
}  // namespace avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else
#define ARSEG_HAVE_AVX2 0
#endif

// Whether this CPU (and OS) runs the AVX2+FMA kernels.
bool avx2_supported() {
#if ARSEG_HAVE_AVX2
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
#else
  return false;
#endif
}

// Whether this CPU (and OS) runs the AVX-512 kernels (foundation, DQ, BW and VL, plus AVX2+FMA).
bool avx512_supported() {
#if ARSEG_HAVE_AVX2
  static const bool supported = avx2_supported() && __builtin_cpu_supports("avx512f") &&
                                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
                                __builtin_cpu_supports("avx512vl");
  return supported;
#else
  return false;
#endif
}

// Names of the instruction sets usable here, best last.
std::vector<std::string> simd_support() {
  std::vector<std::string> names{"generic"};
  if (avx2_supported()) names.emplace_back("avx2");
  if (avx512_supported()) names.emplace_back("avx512");
  return names;
}

// The kernels' instruction set.
enum class Isa { kGeneric, kAvx2, kAvx512 };

// The instruction set for simd = "auto" (the best this CPU runs), "generic", "avx2" or "avx512".
Isa choose_isa(const std::string& simd) {
  if (simd == "auto") return avx512_supported() ? Isa::kAvx512 : avx2_supported() ? Isa::kAvx2 : Isa::kGeneric;
  if (simd == "generic") return Isa::kGeneric;
  if (simd == "avx2" || simd == "avx512") {
    if (!(simd == "avx2" ? avx2_supported() : avx512_supported())) {
      throw py::value_error("simd='" + simd + "' is not supported by this CPU or build");
    }
    return simd == "avx2" ? Isa::kAvx2 : Isa::kAvx512;
  }
  throw py::value_error("simd must be 'auto', 'generic', 'avx2' or 'avx512', got '" + simd + "'");
}

template <typename T>
void run_forward([[maybe_unused]] Isa isa, const T* q, const T* k, const T* v, const Geometry& g, T scale, T* out,
                 T* attn, Index threads) {
#if ARSEG_HAVE_AVX2
  if (isa == Isa::kAvx512) return avx512::forward(q, k, v, g, scale, out, attn, threads);
  if (isa == Isa::kAvx2) return avx2::forward(q, k, v, g, scale, out, attn, threads);
#endif
  generic::forward(q, k, v, g, scale, out, attn, threads);
}

template <typename T>
void run_backward([[maybe_unused]] Isa isa, const T* q, const T* k, const T* v, const T* attn, const T* grad_out,
                  const Geometry& g, T scale, T* grad_q, T* grad_k, T* grad_v, Index threads) {
#if ARSEG_HAVE_AVX2
  if (isa == Isa::kAvx512) return avx512::backward(q, k, v, attn, grad_out, g, scale, grad_q, grad_k, grad_v, threads);
  if (isa == Isa::kAvx2) return avx2::backward(q, k, v, attn, grad_out, g, scale, grad_q, grad_k, grad_v, threads);
#endif
  generic::backward(q, k, v, attn, grad_out, g, scale, grad_q, grad_k, grad_v, threads);
}

// ----------------------------------------------------------------------------------------------------------
// Python bindings: argument checks, dtype dispatch, GIL release.

std::string shape_string(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  return s + (a.ndim() == 1 ? ",)" : ")");
}

bool same_shape(const py::array& a, const std::vector<py::ssize_t>& shape) {
  return a.ndim() == static_cast<py::ssize_t>(shape.size()) && std::equal(shape.begin(), shape.end(), a.shape());
}

std::vector<py::ssize_t> shape_of(const py::array& a) { return {a.shape(), a.shape() + a.ndim()}; }

void require_float_c_contiguous(const py::array& a, const py::array& like, const std::string& name) {
  if (!a.dtype().is(like.dtype())) {
    throw py::value_error(name + " must have the dtype of q (" + std::string(py::str(like.dtype())) + "), got " +
                          std::string(py::str(a.dtype())));
  }
  if (!(a.flags() & py::array::c_style)) throw py::value_error(name + " must be a C-contiguous array");
}

Geometry check_qkv(const py::array& q, const py::array& k, const py::array& v, int window, bool channels_last,
                   Index threads) {
  if (window < 1 || window % 2 == 0) {
    throw py::value_error("the attention window must be odd and positive, got " + std::to_string(window));
  }
  if (threads < 1) throw py::value_error("threads must be at least 1, got " + std::to_string(threads));
  if (!q.dtype().is(py::dtype::of<float>()) && !q.dtype().is(py::dtype::of<double>())) {
    throw py::value_error("local attention supports float32 and float64 arrays, got " +
                          std::string(py::str(q.dtype())));
  }
  if (q.ndim() != 4) throw py::value_error("q must be 4-D, got shape " + shape_string(q));
  if (!same_shape(k, shape_of(q)) || !same_shape(v, shape_of(q))) {
    throw py::value_error("q, k, v must share one shape; got " + shape_string(q) + ", " + shape_string(k) + ", " +
                          shape_string(v));
  }
  require_float_c_contiguous(q, q, "q");
  require_float_c_contiguous(k, q, "k");
  require_float_c_contiguous(v, q, "v");
  Geometry g;
  g.channels_last = channels_last;
  g.n = q.shape(0);
  g.c = channels_last ? q.shape(3) : q.shape(1);
  g.h = channels_last ? q.shape(1) : q.shape(2);
  g.w = channels_last ? q.shape(2) : q.shape(3);
  g.window = window;
  g.r = window / 2;
  g.ww = static_cast<Index>(window) * window;
  g.hp = g.h + 2 * g.r;
  return g;
}

template <typename T>
const T* data_of(const py::array& a) {
  return static_cast<const T*>(a.data());
}

template <typename T>
py::tuple forward_typed(const py::array& q, const py::array& k, const py::array& v, const Geometry& g, double scale,
                        bool save_attn, Isa isa, Index threads) {
  py::array_t<T> out(shape_of(q));
  py::object attn_obj = py::none();
  T* attn = nullptr;
  if (save_attn) {
    py::array_t<T> a(std::vector<py::ssize_t>{g.n, g.ww, g.h, g.w});
    attn = a.mutable_data();
    attn_obj = std::move(a);
  }
  T* out_ptr = out.mutable_data();
  const T* qd = data_of<T>(q);
  const T* kd = data_of<T>(k);
  const T* vd = data_of<T>(v);
  {
    py::gil_scoped_release release;
    run_forward<T>(isa, qd, kd, vd, g, static_cast<T>(scale), out_ptr, attn, threads);
  }
  return py::make_tuple(std::move(out), attn_obj);
}

py::tuple forward(const py::array& q, const py::array& k, const py::array& v, int window, double scale,
                  bool channels_last, bool save_attn, Index threads, const std::string& simd) {
  const Geometry g = check_qkv(q, k, v, window, channels_last, threads);
  const Isa isa = choose_isa(simd);
  if (q.dtype().is(py::dtype::of<float>())) return forward_typed<float>(q, k, v, g, scale, save_attn, isa, threads);
  return forward_typed<double>(q, k, v, g, scale, save_attn, isa, threads);
}

template <typename T>
py::tuple backward_typed(const py::array& q, const py::array& k, const py::array& v, const py::array& attn,
                         const py::array& grad_out, const Geometry& g, double scale, Isa isa, Index threads) {
  const std::vector<py::ssize_t> shape = shape_of(q);
  py::array_t<T> gq(shape), gk(shape), gv(shape);
  T* gq_ptr = gq.mutable_data();
  T* gk_ptr = gk.mutable_data();
  T* gv_ptr = gv.mutable_data();
  const T* qd = data_of<T>(q);
  const T* kd = data_of<T>(k);
  const T* vd = data_of<T>(v);
  const T* ad = data_of<T>(attn);
  const T* god = data_of<T>(grad_out);
  {
    py::gil_scoped_release release;
    run_backward<T>(isa, qd, kd, vd, ad, god, g, static_cast<T>(scale), gq_ptr, gk_ptr, gv_ptr, threads);
  }
  return py::make_tuple(std::move(gq), std::move(gk), std::move(gv));
}

py::tuple backward(const py::array& q, const py::array& k, const py::array& v, const py::array& attn,
                   const py::array& grad_out, int window, double scale, bool channels_last, Index threads,
                   const std::string& simd) {
  const Geometry g = check_qkv(q, k, v, window, channels_last, threads);
  const Isa isa = choose_isa(simd);
  if (!same_shape(grad_out, shape_of(q))) {
    throw py::value_error("grad_out must have the shape of q " + shape_string(q) + ", got " + shape_string(grad_out));
  }
  if (!same_shape(attn, {g.n, g.ww, g.h, g.w})) {
    throw py::value_error("attn must have shape (N, window**2, H, W) = (" + std::to_string(g.n) + ", " +
                          std::to_string(g.ww) + ", " + std::to_string(g.h) + ", " + std::to_string(g.w) + "), got " +
                          shape_string(attn));
  }
  require_float_c_contiguous(grad_out, q, "grad_out");
  require_float_c_contiguous(attn, q, "attn");
  if (q.dtype().is(py::dtype::of<float>())) {
    return backward_typed<float>(q, k, v, attn, grad_out, g, scale, isa, threads);
  }
  return backward_typed<double>(q, k, v, attn, grad_out, g, scale, isa, threads);
}

void run_creff([[maybe_unused]] Isa isa, const float* lr, const float* key, const float* disp, const CreffPlan<float>& plan,
               float scale, float* out, Index threads) {
#if ARSEG_HAVE_AVX2
  if (isa == Isa::kAvx512) return avx512::creff_forward(lr, key, disp, plan, scale, out, threads);
  if (isa == Isa::kAvx2) return avx2::creff_forward(lr, key, disp, plan, scale, out, threads);
#endif
  generic::creff_forward(lr, key, disp, plan, scale, out, threads);
}

// Checks a float32 C-contiguous array against an expected shape; `what` names it in the error.
void require_float32(const py::array& a, const std::vector<py::ssize_t>& shape, const std::string& what) {
  if (!a.dtype().is(py::dtype::of<float>())) {
    throw py::value_error(what + " must be float32, got " + std::string(py::str(a.dtype())));
  }
  if (!same_shape(a, shape)) {
    std::string expected = "(";
    for (size_t i = 0; i < shape.size(); ++i) expected += (i ? ", " : "") + std::to_string(shape[i]);
    throw py::value_error(what + " must have shape " + expected + "), got " + shape_string(a));
  }
  if (!(a.flags() & py::array::c_style)) throw py::value_error(what + " must be a C-contiguous array");
}

py::array creff_forward(const py::array& lr, const py::array& key, const py::array& disp, const py::array& wq,
                        const py::array& bq, const py::array& wk, const py::array& bk, const py::array& wv,
                        const py::array& bv, int window, double scale, Index threads, const std::string& simd) {
  if (window < 1 || window % 2 == 0) {
    throw py::value_error("the attention window must be odd and positive, got " + std::to_string(window));
  }
  if (threads < 1) throw py::value_error("threads must be at least 1, got " + std::to_string(threads));
  if (lr.ndim() != 4 || key.ndim() != 4) {
    throw py::value_error("lr and key must be 4-D (N, h, w, C) and (N, H, W, C), got " + shape_string(lr) + " and " +
                          shape_string(key));
  }
  const py::ssize_t n = key.shape(0), h = key.shape(1), w = key.shape(2), c = key.shape(3);
  require_float32(key, {n, h, w, c}, "key");
  require_float32(lr, {n, lr.shape(1), lr.shape(2), c}, "lr");
  require_float32(disp, {n, 2, h, w}, "disp");
  for (const auto& [a, name] : {std::pair{&wq, "wq"}, {&wk, "wk"}, {&wv, "wv"}}) require_float32(*a, {c, 1, 3, 3}, name);
  for (const auto& [a, name] : {std::pair{&bq, "bq"}, {&bk, "bk"}, {&bv, "bv"}}) require_float32(*a, {c}, name);
  if (n > 0 && c > 0 && h > 0 && w > 0 && (lr.shape(1) < 1 || lr.shape(2) < 1)) {
    throw py::value_error("lr must not be empty, got " + shape_string(lr));
  }
  const Isa isa = choose_isa(simd);
  CreffPlan<float> plan;
  plan.g.n = n;
  plan.g.c = c;
  plan.g.h = h;
  plan.g.w = w;
  plan.g.window = window;
  plan.g.r = window / 2;
  plan.g.ww = static_cast<Index>(window) * window;
  plan.g.hp = h + 2 * plan.g.r;
  plan.g.channels_last = true;
  plan.lr_h = lr.shape(1);
  plan.lr_w = lr.shape(2);
  py::array_t<float> out(std::vector<py::ssize_t>{n, h, w, c});
  if (out.size() == 0) return out;
  upsample_table(plan.lr_h, h, plan.y0, plan.y1, plan.ly);
  upsample_table(plan.lr_w, w, plan.x0, plan.x1, plan.lx);
  plan.wq = data_of<float>(wq);
  plan.bq = data_of<float>(bq);
  plan.wk = data_of<float>(wk);
  plan.bk = data_of<float>(bk);
  plan.wv = data_of<float>(wv);
  plan.bv = data_of<float>(bv);
  float* out_ptr = out.mutable_data();
  const float* lr_ptr = data_of<float>(lr);
  const float* key_ptr = data_of<float>(key);
  const float* disp_ptr = data_of<float>(disp);
  {
    py::gil_scoped_release release;
    run_creff(isa, lr_ptr, key_ptr, disp_ptr, plan, static_cast<float>(scale), out_ptr, threads);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_local_attention, m) {
  m.doc() = "Fused CPU local attention (CReFF): forward and backward on channels-first or channels-last arrays.";
  m.def("forward", &forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("window"), py::arg("scale"),
        py::arg("channels_last"), py::arg("save_attn"), py::arg("threads"), py::arg("simd") = "auto",
        "forward(q, k, v, window, scale, channels_last, save_attn, threads, simd='auto') -> (out, attn or None)\n\n"
        "q, k, v: C-contiguous float32 or float64 arrays of one shape, (N, C, H, W), or (N, H, W, C) when\n"
        "channels_last. out has the same shape and layout. attn: the (N, window**2, H, W) softmax weights,\n"
        "returned when save_attn (backward needs them). threads: at most this many threads. simd: 'auto'\n"
        "(the best the CPU supports), or one of simd_support().");
  m.def("backward", &backward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("attn"), py::arg("grad_out"),
        py::arg("window"), py::arg("scale"), py::arg("channels_last"), py::arg("threads"), py::arg("simd") = "auto",
        "backward(q, k, v, attn, grad_out, window, scale, channels_last, threads, simd='auto')\n"
        "-> (grad_q, grad_k, grad_v)\n\n"
        "attn: the weights forward returned with save_attn=True; the other arrays share q's shape and layout.");
  m.def("creff_forward", &creff_forward, py::arg("lr"), py::arg("key"), py::arg("disp"), py::arg("wq"), py::arg("bq"),
        py::arg("wk"), py::arg("bk"), py::arg("wv"), py::arg("bv"), py::arg("window"), py::arg("scale"),
        py::arg("threads"), py::arg("simd") = "auto",
        "creff_forward(lr, key, disp, wq, bq, wk, bk, wv, bv, window, scale, threads, simd='auto') -> out\n\n"
        "Fused CReFF inference, float32, channels-last: lr (N, h, w, C) is upsampled (bilinear, align_corners=True)\n"
        "to the keyframe grid of key (N, H, W, C); key is warped by disp (N, 2, H, W), displacements in cells\n"
        "(bilinear, zero outside); Q, K, V are depthwise 3x3 convolutions (weights (C, 1, 3, 3), biases (C,)) of\n"
        "the upsampled and warped features; out (N, H, W, C) = upsampled + local attention (Q, K, V).");
  m.def("simd_support", &simd_support, "simd_support() -> the kernel instruction sets this CPU runs, best last.");
}
