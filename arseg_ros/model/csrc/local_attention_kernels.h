// SIMD kernels of the fused local attention, for one instruction set. Included by local_attention.cpp once per
// instruction set, inside a namespace of its own and with ARSEG_VECTOR_BYTES defined (hence no include guard
// and no #include: the including file provides <algorithm>, <cmath>, <cstring>, <limits>, <memory>, <new>, <vector>,
// Index, Geometry, parallel_for, buffer and pad).
//
// The kernels vectorise across a tile of kLanes consecutive positions of one image row: logits, softmax and
// weighted sums are computed lane-wise for kLanes positions at once, so no horizontal reduction is needed and
// the softmax (max, exp, sum) stays in SIMD registers. Vectors are GCC/Clang generic vectors (vector_size).

// Bytes per SIMD vector of this instruction set.
constexpr int kVectorBytes = ARSEG_VECTOR_BYTES;

// Generic vectors of kVectorBytes bytes (floats or doubles), with the matching integer vector (comparison results).
template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef float Vec __attribute__((vector_size(kVectorBytes)));
  typedef std::int32_t Int __attribute__((vector_size(kVectorBytes)));
};
template <>
struct Simd<double> {
  typedef double Vec __attribute__((vector_size(kVectorBytes)));
  typedef std::int64_t Int __attribute__((vector_size(kVectorBytes)));
};
template <typename T>
using Vec = typename Simd<T>::Vec;
template <typename T>
using IntVec = typename Simd<T>::Int;
template <typename T>
constexpr int kLanes = static_cast<int>(kVectorBytes / sizeof(T));

// Unaligned vector load and store.
template <typename T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
inline void store(T* p, const Vec<T>& v) {
  std::memcpy(p, &v, sizeof v);
}

// Channels accumulated together in a weighted sum of window vectors (register blocking).
constexpr int kChannelBlock = 8;
// Offsets (columns of one window row) whose logits are accumulated together (register blocking).
constexpr int kOffsetBlock = 8;

// Writes the valid lanes of a tile (depth vectors, one per channel) at image b, row y, columns x0.. into a
// user-layout array of `depth` channels (channels-first when !user_layout).
template <typename T>
void store_tile(const Vec<T>* tile, const Geometry& g, Index depth, bool user_layout, Index b, Index y, Index x0,
                T* dst) {
  const Index valid = std::min<Index>(kLanes<T>, g.w - x0);
  if (user_layout && g.channels_last) {
    T* base = dst + ((b * g.h + y) * g.w + x0) * depth;
    for (Index i = 0; i < valid; ++i) {
      for (Index ch = 0; ch < depth; ++ch) base[i * depth + ch] = tile[ch][i];
    }
    return;
  }
  for (Index ch = 0; ch < depth; ++ch) {
    T* o = dst + ((b * depth + ch) * g.h + y) * g.w + x0;
    if (valid == kLanes<T>) {
      store(o, tile[ch]);
    } else {
      for (Index i = 0; i < valid; ++i) o[i] = tile[ch][i];
    }
  }
}

// logits[j] = sum_ch q[ch] * k[ch * k_stride + j + lane] for j < NJ, lane-wise over the tile's positions.
template <int NJ, typename T>
inline void dot_block(const Vec<T>* q, const T* k, Index k_stride, Index channels, Vec<T>* logits) {
  Vec<T> acc[NJ] = {};
  for (Index ch = 0; ch < channels; ++ch) {
    const Vec<T> qv = q[ch];
    const T* kr = k + ch * k_stride;
    for (int j = 0; j < NJ; ++j) acc[j] += qv * load(kr + j);
  }
  for (int j = 0; j < NJ; ++j) logits[j] = acc[j];
}

// The window rows of one tile in a channels-first source: rows dy0..dy1-1 of the window exist (the others
// are outside the image and contribute nothing); element (window row dy, channel ch, window column j) is at
// row(dy)[ch * ch_stride + j] for j < lanes + window - 1. Rows are either evenly spaced (data, row_stride) or
// listed one by one (rows[dy], for a ring of rows).
template <typename T>
struct Window {
  const T* data;
  Index row_stride, ch_stride;
  int dy0, dy1;
  const T* const* rows;

  const T* row(int dy) const { return rows != nullptr ? rows[dy] : data + (dy - dy0) * row_stride; }
};

// Logits of a tile (q: one vector per channel): logits[dy * window + dx] = sum_ch q[ch] * k(dy, ch, dx + lane),
// and 0 for window rows outside the image.
template <typename T>
inline void window_dots(const Vec<T>* q, const Window<T>& k, const Geometry& g, Vec<T>* logits) {
  for (int dy = 0; dy < g.window; ++dy) {
    Vec<T>* out = logits + dy * g.window;
    if (dy < k.dy0 || dy >= k.dy1) {
      for (int j = 0; j < g.window; ++j) out[j] = Vec<T>{};
      continue;
    }
    const T* kr = k.row(dy);
    int j = 0;
    for (; j + kOffsetBlock <= g.window; j += kOffsetBlock)
      dot_block<kOffsetBlock>(q, kr + j, k.ch_stride, g.c, out + j);
    switch (g.window - j) {
      case 7:
        dot_block<7>(q, kr + j, k.ch_stride, g.c, out + j);
        break;
      case 6:
        dot_block<6>(q, kr + j, k.ch_stride, g.c, out + j);
        break;
      case 5:
        dot_block<5>(q, kr + j, k.ch_stride, g.c, out + j);
        break;
      case 4:
        dot_block<4>(q, kr + j, k.ch_stride, g.c, out + j);
        break;
      case 3:
        dot_block<3>(q, kr + j, k.ch_stride, g.c, out + j);
        break;
      case 2:
        dot_block<2>(q, kr + j, k.ch_stride, g.c, out + j);
        break;
      case 1:
        dot_block<1>(q, kr + j, k.ch_stride, g.c, out + j);
        break;
      default:
        break;
    }
  }
}

// out[ch] = sum_{dy, dx} weights(dy, dx) * v(dy, ch, dx + lane) for all channels, over the window rows inside
// the image.
template <int CB, typename T, typename Weights>
inline void weighted_block(const Weights& weights, const Window<T>& v, const Geometry& g, Index ch0, Vec<T>* out) {
  Vec<T> acc[CB] = {};
  for (int dy = v.dy0; dy < v.dy1; ++dy) {
    const T* vr = v.row(dy) + ch0 * v.ch_stride;
    for (int dx = 0; dx < g.window; ++dx) {
      const Vec<T> a = weights(dy, dx);
      for (int cb = 0; cb < CB; ++cb) acc[cb] += a * load(vr + cb * v.ch_stride + dx);
    }
  }
  for (int cb = 0; cb < CB; ++cb) out[ch0 + cb] = acc[cb];
}

template <typename T, typename Weights>
inline void weighted_sum(const Weights& weights, const Window<T>& v, const Geometry& g, Vec<T>* out) {
  Index ch = 0;
  for (; ch + kChannelBlock <= g.c; ch += kChannelBlock) weighted_block<kChannelBlock>(weights, v, g, ch, out);
  for (; ch < g.c; ++ch) weighted_block<1>(weights, v, g, ch, out);
}

// exp(x) lane-wise for x <= 0 (no NaN): single precision uses a Cephes-style range reduction and degree-5
// polynomial (about 1 ulp) that stays in SIMD registers; results below exp(-87) are flushed to 0.
inline Vec<float> exp_nonpositive(const Vec<float>& x) {
  using V = Vec<float>;
  const V low = V{} - 87.0f;
  const V xc = x < low ? low : x;
  const V round = V{} + 12582912.0f;  // 1.5 * 2**23: adding and subtracting it rounds to an integer
  const V n = (xc * 1.44269504088896341f + round) - round;
  V t = xc - n * 0.693359375f;
  t = t - n * -2.12194440e-4f;
  V p = V{} + 1.9875691500e-4f;
  p = p * t + 1.3981999507e-3f;
  p = p * t + 8.3334519073e-3f;
  p = p * t + 4.1665795894e-2f;
  p = p * t + 1.6666665459e-1f;
  p = p * t + 5.0000001201e-1f;
  const V e = p * t * t + t + 1.0f;
  const IntVec<float> bits = (__builtin_convertvector(n, IntVec<float>) + 127) << 23;
  V two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return x < low ? V{} : e * two_n;
}

inline Vec<double> exp_nonpositive(const Vec<double>& x) {
  Vec<double> e;
  for (int i = 0; i < kLanes<double>; ++i) e[i] = std::exp(x[i]);
  return e;
}

// attn = softmax(logits) over the ww offsets, lane by lane (one softmax per position of the tile). Lanes whose
// logits are all finite take the SIMD path; a lane with a NaN or an infinity gets torch.softmax's result
// (NaNs) through a scalar path.
template <typename T>
inline void softmax(const Vec<T>* logits, Index ww, Vec<T>* attn) {
  using V = Vec<T>;
  V m = logits[0];
  IntVec<T> bad = logits[0] != logits[0];
  for (Index o = 1; o < ww; ++o) {
    const V l = logits[o];
    bad |= l != l;
    m = l > m ? l : m;
  }
  const V inf = V{} + std::numeric_limits<T>::infinity();
  bad |= (m == inf) | (m == -inf);
  V sum{};
  for (Index o = 0; o < ww; ++o) {
    const V x = logits[o] - m;
    attn[o] = exp_nonpositive(bad ? V{} : x);
    sum += attn[o];
  }
  const V inv = T(1) / sum;
  for (Index o = 0; o < ww; ++o) attn[o] *= inv;
  for (int i = 0; i < kLanes<T>; ++i) {
    if (!bad[i]) continue;
    T mm = m[i];
    for (Index o = 0; o < ww; ++o) {
      if (logits[o][i] != logits[o][i]) mm = logits[o][i];
    }
    T s = T(0);
    for (Index o = 0; o < ww; ++o) s += std::exp(logits[o][i] - mm);
    for (Index o = 0; o < ww; ++o) attn[o][i] = std::exp(logits[o][i] - mm) / s;
  }
}

// Runs fn(worker, b, y, x0) for every tile, whole image rows split between threads.
template <typename T, typename Fn>
void for_tiles(const Geometry& g, Index threads, const Fn& fn) {
  parallel_for(g.n * g.h, threads, [&](Index worker, Index begin, Index end) {
    for (Index i = begin; i < end; ++i) {
      for (Index t = 0; t < g.tiles; ++t) fn(worker, i / g.h, i % g.h, t * kLanes<T>);
    }
  });
}

// Columns a tile's window spans: the tile's lanes plus r on either side.
template <typename T>
Index window_span(const Geometry& g) {
  return kLanes<T> + 2 * g.r;
}

// Window of tile (image b, row y, columns x0..) in a zero-padded (N, Hp, C, Wpad) buffer.
template <typename T>
Window<T> padded_window(const T* buffer, const Geometry& g, Index b, Index y, Index x0) {
  return {buffer + g.padded(b, y, g.c, 0, x0), g.c * g.wpad, g.wpad, 0, g.window, nullptr};
}

// Window of tile (image b, row y, columns x0..) read in place from a channels-first (N, C, H, W) array. Rows
// outside the image are left out; a tile whose window crosses the left or right edge is copied, zero-filled,
// into `patch` (window * C * window_span elements), so that every read stays inside the array.
template <typename T>
Window<T> image_window(const T* src, const Geometry& g, Index b, Index y, Index x0, T* patch) {
  const Index top = y - g.r;
  const int dy0 = static_cast<int>(std::max<Index>(0, -top));
  const int dy1 = static_cast<int>(std::min<Index>(g.window, g.h - top));
  const Index left = x0 - g.r;
  const Index span = window_span<T>(g);
  const Index plane = g.h * g.w;
  const T* image = src + b * g.c * plane;
  if (left >= 0 && left + span <= g.w) return {image + (top + dy0) * g.w + left, g.w, plane, dy0, dy1, nullptr};
  for (int dy = dy0; dy < dy1; ++dy) {
    for (Index ch = 0; ch < g.c; ++ch) {
      const T* row = image + ch * plane + (top + dy) * g.w;
      T* dst = patch + ((dy - dy0) * g.c + ch) * span;
      for (Index j = 0; j < span; ++j) {
        const Index col = left + j;
        dst[j] = col >= 0 && col < g.w ? row[col] : T(0);
      }
    }
  }
  return {patch, g.c * span, span, dy0, dy1, nullptr};
}

// A feature map as the kernels read it: the user's channels-first array in place, or a padded copy.
template <typename T>
struct Features {
  const T* data;
  bool padded;
  // Window of tile (image b, row y, columns x0..); `patch` as for image_window.
  Window<T> window(const Geometry& g, Index b, Index y, Index x0, T* patch) const {
    return padded ? padded_window(data, g, b, y, x0) : image_window(data, g, b, y, x0, patch);
  }
};

// Channels-first user arrays are read in place; channels-last ones are copied into `copy`, padded.
template <typename T>
Features<T> features(const T* user, const Geometry& g, std::unique_ptr<T[]>& copy, Index threads) {
  if (!g.channels_last) return {user, false};
  copy = buffer<T>(g.padded_size(g.c));
  pad(user, g, g.c, true, copy.get(), threads);
  return {copy.get(), true};
}

// The last `window` image rows of a channels-last array, transposed to channels-first and zero-padded like the
// padded buffers (C x Wpad per row), for one thread walking its rows in order: the forward pass of channels-last
// inputs reads its windows from here instead of from a padded copy of the whole array.
template <typename T>
class RowRing {
 public:
  explicit RowRing(const Geometry& g)
      : rows_(static_cast<size_t>(g.window * g.c * g.wpad), T(0)), pointers_(static_cast<size_t>(g.window)) {}

  // Makes the rows of the window of output row y of image b available (rows are loaded as y advances).
  void advance(const T* src, const Geometry& g, Index b, Index y) {
    if (b != image_ || next_ < y - g.r) {
      image_ = b;
      next_ = std::max<Index>(0, y - g.r);
    }
    for (const Index last = std::min(g.h - 1, y + g.r); next_ <= last; ++next_) {
      T* dst = slot(g, next_) + g.r;
      const T* row = src + (b * g.h + next_) * g.w * g.c;
      for (Index x = 0; x < g.w; ++x) {
        for (Index ch = 0; ch < g.c; ++ch) dst[ch * g.wpad + x] = row[x * g.c + ch];
      }
    }
  }

  // Window of tile (row y, columns x0..) of the image last passed to advance(b, y).
  Window<T> window(const Geometry& g, Index y, Index x0) {
    const Index top = y - g.r;
    const int dy0 = static_cast<int>(std::max<Index>(0, -top));
    const int dy1 = static_cast<int>(std::min<Index>(g.window, g.h - top));
    for (int dy = dy0; dy < dy1; ++dy) pointers_[static_cast<size_t>(dy)] = slot(g, top + dy) + x0;
    return {nullptr, 0, g.wpad, dy0, dy1, pointers_.data()};
  }

 private:
  T* slot(const Geometry& g, Index image_row) { return rows_.data() + (image_row % g.window) * g.c * g.wpad; }

  std::vector<T> rows_;
  std::vector<const T*> pointers_;
  Index image_ = -1;  // image whose rows are loaded
  Index next_ = 0;    // next image row to load
};

// Heap array of vectors, allocated with explicit 64-byte alignment: std::allocator may not honour the
// alignment of a vector type declared in a target region, and the compiler uses aligned moves on these.
template <typename T>
class VectorArray {
 public:
  explicit VectorArray(Index size)
      : size_(std::max<Index>(size, 1)),
        data_(static_cast<Vec<T>*>(::operator new(sizeof(Vec<T>) * static_cast<size_t>(size_), kAlignment))) {
    std::memset(static_cast<void*>(data_), 0, sizeof(Vec<T>) * static_cast<size_t>(size_));
  }
  VectorArray(const VectorArray&) = delete;
  VectorArray& operator=(const VectorArray&) = delete;
  VectorArray(VectorArray&& other) noexcept : size_(other.size_), data_(other.data_) { other.data_ = nullptr; }
  VectorArray& operator=(VectorArray&&) = delete;
  ~VectorArray() {
    if (data_ != nullptr) ::operator delete(data_, kAlignment);
  }
  Vec<T>* data() { return data_; }
  Vec<T>& operator[](Index i) { return data_[i]; }

 private:
  static constexpr std::align_val_t kAlignment{64};
  Index size_;
  Vec<T>* data_;
};

// Per-thread work space: a tile of channel vectors in and out, two window-sized tiles and two edge patches.
template <typename T>
struct Scratch {
  VectorArray<T> in, out, logits, attn;
  std::vector<T> patch_a, patch_b;
  explicit Scratch(const Geometry& g)
      : in(g.c),
        out(g.c),
        logits(g.ww),
        attn(g.ww),
        patch_a(static_cast<size_t>(g.window * g.c * window_span<T>(g))),
        patch_b(patch_a.size()) {}
};

template <typename T>
std::vector<Scratch<T>> scratch_for(const Geometry& g, Index threads) {
  const Index workers = std::max<Index>(1, std::min(threads, g.n * g.h));
  std::vector<Scratch<T>> scratch;
  scratch.reserve(static_cast<size_t>(workers));
  for (Index i = 0; i < workers; ++i) scratch.emplace_back(g);
  return scratch;
}

// Loads the tile of a user array (channels-first or channels-last per g) at image b, row y, columns x0.. into
// one vector per channel; lanes past the end of the row are 0.
template <typename T>
void load_tile(const T* src, const Geometry& g, Index b, Index y, Index x0, Vec<T>* tile) {
  const Index valid = std::min<Index>(kLanes<T>, g.w - x0);
  if (g.channels_last) {
    for (Index ch = 0; ch < g.c; ++ch) tile[ch] = Vec<T>{};
    for (Index i = 0; i < valid; ++i) {
      const T* s = src + ((b * g.h + y) * g.w + x0 + i) * g.c;
      for (Index ch = 0; ch < g.c; ++ch) tile[ch][i] = s[ch];
    }
    return;
  }
  for (Index ch = 0; ch < g.c; ++ch) {
    const T* s = src + ((b * g.c + ch) * g.h + y) * g.w + x0;
    if (valid == kLanes<T>) {
      tile[ch] = load(s);
    } else {
      Vec<T> v{};
      for (Index i = 0; i < valid; ++i) v[i] = s[i];
      tile[ch] = v;
    }
  }
}

// The geometry completed for this instruction set: tiles of kLanes<T> positions and the padded row length.
template <typename T>
Geometry tiled(Geometry g) {
  g.tiles = (g.w + kLanes<T> - 1) / kLanes<T>;
  g.wpad = g.tiles * kLanes<T> + 2 * g.r;
  return g;
}

// Forward pass (g from tiled<T>). q, k, v and out in the layout of g; attn_out (N, ww, H, W) or nullptr.
// Channels-first K and V are read in place, channels-last ones through per-thread rings of transposed rows.
template <typename T>
void forward_impl(const T* q, const T* k, const T* v, const Geometry& g, T scale, T* out, T* attn_out, Index threads) {
  auto scratch = scratch_for<T>(g, threads);
  std::vector<RowRing<T>> k_rings, v_rings;
  if (g.channels_last) {
    k_rings.reserve(scratch.size());
    v_rings.reserve(scratch.size());
    for (size_t i = 0; i < scratch.size(); ++i) {
      k_rings.emplace_back(g);
      v_rings.emplace_back(g);
    }
  }
  const Features<T> kf{k, false}, vf{v, false};
  for_tiles<T>(g, threads, [&](Index worker, Index b, Index y, Index x0) {
    Scratch<T>& s = scratch[static_cast<size_t>(worker)];
    load_tile(q, g, b, y, x0, s.in.data());
    Window<T> kw{}, vw{};
    if (g.channels_last) {
      RowRing<T>& kr = k_rings[static_cast<size_t>(worker)];
      RowRing<T>& vr = v_rings[static_cast<size_t>(worker)];
      if (x0 == 0) {
        kr.advance(k, g, b, y);
        vr.advance(v, g, b, y);
      }
      kw = kr.window(g, y, x0);
      vw = vr.window(g, y, x0);
    } else {
      kw = kf.window(g, b, y, x0, s.patch_a.data());
      vw = vf.window(g, b, y, x0, s.patch_b.data());
    }
    window_dots(s.in.data(), kw, g, s.logits.data());
    if (scale != T(1)) {
      for (Index o = 0; o < g.ww; ++o) s.logits[o] *= scale;
    }
    softmax<T>(s.logits.data(), g.ww, s.attn.data());
    if (attn_out != nullptr) store_tile(s.attn.data(), g, g.ww, false, b, y, x0, attn_out);
    const Vec<T>* a = s.attn.data();
    weighted_sum([&](int dy, int dx) { return a[dy * g.window + dx]; }, vw, g, s.out.data());
    store_tile(s.out.data(), g, g.c, true, b, y, x0, out);
  });
}

// Backward pass (g from tiled<T>). q, k, v, grad_out and the gradients in the layout of g; attn (N, ww, H, W)
// from forward. The weights are copied into padded buffers (attn, and dlogit as computed) so that the gathers
// of grad_k and grad_v read zeros for positions outside the image.
template <typename T>
void backward_impl(const T* q, const T* k, const T* v, const T* attn, const T* grad_out, const Geometry& g, T scale,
                   T* grad_q, T* grad_k, T* grad_v, Index threads) {
  constexpr int P = kLanes<T>;
  std::unique_ptr<T[]> q_copy, k_copy, v_copy, g_copy;
  const Features<T> qf = features(q, g, q_copy, threads);
  const Features<T> kf = features(k, g, k_copy, threads);
  const Features<T> vf = features(v, g, v_copy, threads);
  const Features<T> gf = features(grad_out, g, g_copy, threads);
  const auto ap = buffer<T>(g.padded_size(g.ww));
  const auto dp = buffer<T>(g.padded_size(g.ww));
  pad(attn, g, g.ww, false, ap.get(), threads);
  const Index weights_row = g.ww * g.wpad;
  parallel_for(g.n * g.hp, threads, [&](Index, Index begin, Index end) {
    std::fill(dp.get() + begin * weights_row, dp.get() + end * weights_row, T(0));
  });
  auto scratch = scratch_for<T>(g, threads);

  // dlogit * scale into dp (valid positions only; the rest stays 0), and grad_q over each position's window.
  for_tiles<T>(g, threads, [&](Index worker, Index b, Index y, Index x0) {
    Scratch<T>& s = scratch[static_cast<size_t>(worker)];
    const Index valid = std::min<Index>(P, g.w - x0);
    load_tile(grad_out, g, b, y, x0, s.in.data());
    window_dots(s.in.data(), vf.window(g, b, y, x0, s.patch_a.data()), g, s.logits.data());
    const Index a_centre = g.padded(b, y + g.r, g.ww, 0, x0 + g.r);
    Vec<T> dot{};
    for (Index o = 0; o < g.ww; ++o) {
      s.attn[o] = load(ap.get() + a_centre + o * g.wpad);
      dot += s.attn[o] * s.logits[o];
    }
    for (Index o = 0; o < g.ww; ++o) {
      s.attn[o] = scale * s.attn[o] * (s.logits[o] - dot);
      T* d = dp.get() + a_centre + o * g.wpad;
      for (Index i = 0; i < valid; ++i) d[i] = s.attn[o][i];
    }
    const Vec<T>* dl = s.attn.data();
    weighted_sum([&](int dy, int dx) { return dl[dy * g.window + dx]; }, kf.window(g, b, y, x0, s.patch_b.data()), g,
                 s.out.data());
    store_tile(s.out.data(), g, g.c, true, b, y, x0, grad_q);
  });

  // grad_k[s] = sum_o dlogit[s - o, o] * q[s - o] and grad_v[s] = sum_o attn[s - o, o] * grad_out[s - o], as
  // gathers: window cell (dy, dx) of the tile's corner is position s - o for offset index ww - 1 - (dy, dx).
  for_tiles<T>(g, threads, [&](Index worker, Index b, Index y, Index x0) {
    Scratch<T>& s = scratch[static_cast<size_t>(worker)];
    for (int dy = 0; dy < g.window; ++dy) {
      for (int dx = 0; dx < g.window; ++dx) {
        const Index j = dy * g.window + dx;
        const Index at = g.padded(b, y + dy, g.ww, g.ww - 1 - j, x0 + dx);
        s.logits[j] = load(dp.get() + at);
        s.attn[j] = load(ap.get() + at);
      }
    }
    const Vec<T>* wk = s.logits.data();
    const Vec<T>* wv = s.attn.data();
    weighted_sum([&](int dy, int dx) { return wk[dy * g.window + dx]; }, qf.window(g, b, y, x0, s.patch_a.data()), g,
                 s.out.data());
    store_tile(s.out.data(), g, g.c, true, b, y, x0, grad_k);
    weighted_sum([&](int dy, int dx) { return wv[dy * g.window + dx]; }, gf.window(g, b, y, x0, s.patch_b.data()), g,
                 s.out.data());
    store_tile(s.out.data(), g, g.c, true, b, y, x0, grad_v);
  });
}

// Entry points: complete the geometry for this instruction set and run.
template <typename T>
void forward(const T* q, const T* k, const T* v, const Geometry& g, T scale, T* out, T* attn_out, Index threads) {
  forward_impl(q, k, v, tiled<T>(g), scale, out, attn_out, threads);
}

template <typename T>
void backward(const T* q, const T* k, const T* v, const T* attn, const T* grad_out, const Geometry& g, T scale,
              T* grad_q, T* grad_k, T* grad_v, Index threads) {
  backward_impl(q, k, v, attn, grad_out, tiled<T>(g), scale, grad_q, grad_k, grad_v, threads);
}

// ----------------------------------------------------------------------------------------------------------
// Fused CReFF inference (forward only): bilinear upsampling of the LR feature (align_corners=True), backward warp
// of the keyframe feature (bilinear, zero outside), the three depthwise 3x3 convolutions (zero padding, bias), the
// local attention and the residual, in one pass. Nothing of the image size is materialised but the output: the
// image is cut into vertical strips of whole tiles and each work item walks one strip of one band of rows top to
// bottom, keeping the rows it needs in small per-thread rings (strip-wide, channels-first per row) that stay in
// the core's cache. Rows and columns outside the image are zero in every ring, as the convolutions' padding and
// the attention's out-of-image neighbours require.

// A strip-wide row buffer holding `slots` rows of `depth` channels x `span` columns (column j is image column
// origin + j), indexed by image row modulo `slots`.
template <typename T>
class StripRing {
 public:
  StripRing(Index slots, Index depth, Index span)
      : slots_(slots), depth_(depth), span_(span), data_(static_cast<size_t>(slots * depth * span), T(0)) {}
  T* row(Index image_row) { return data_.data() + (image_row % slots_) * depth_ * span_; }
  Index span() const { return span_; }

 private:
  Index slots_, depth_, span_;
  std::vector<T> data_;
};

// Upsampled LR row `y` of image b over image columns origin .. origin + span - 1 (0 outside the image), written
// channels-first into dst (C x span). lr: (N, h, w, C).
template <typename T>
void upsampled_row(const T* lr, const CreffPlan<T>& p, Index b, Index y, Index origin, Index span, T* dst) {
  const Index c = p.g.c;
  std::fill(dst, dst + c * span, T(0));
  const size_t ys = static_cast<size_t>(y);
  const T l1 = p.ly[ys], l0 = T(1) - l1;
  const T* r0 = lr + (b * p.lr_h + p.y0[ys]) * p.lr_w * c;
  const T* r1 = lr + (b * p.lr_h + p.y1[ys]) * p.lr_w * c;
  const Index j0 = std::max<Index>(0, -origin), j1 = std::min<Index>(span, p.g.w - origin);
  for (Index j = j0; j < j1; ++j) {
    const size_t xs = static_cast<size_t>(origin + j);
    const T m1 = p.lx[xs], m0 = T(1) - m1;
    const T* a = r0 + p.x0[xs] * c;
    const T* bb = r0 + p.x1[xs] * c;
    const T* cc = r1 + p.x0[xs] * c;
    const T* d = r1 + p.x1[xs] * c;
    for (Index ch = 0; ch < c; ++ch) dst[ch * span + j] = l0 * (m0 * a[ch] + m1 * bb[ch]) + l1 * (m0 * cc[ch] + m1 * d[ch]);
  }
}

// Keyframe feature row `y` of image b warped by the displacement (in cells), over image columns origin ..
// origin + span - 1 (0 outside the image), written channels-first into dst (C x span). key: (N, H, W, C);
// disp: (N, 2, H, W). Each output samples the keyframe bilinearly at (x + dx, y + dy); corners outside the grid
// count as 0, as grid_sample's zero padding does, and so does a non-finite sampling position.
template <typename T>
void warped_row(const T* key, const T* disp, const CreffPlan<T>& p, Index b, Index y, Index origin, Index span,
                T* dst, T* pixel) {
  const Geometry& g = p.g;
  const Index c = g.c;
  std::fill(dst, dst + c * span, T(0));
  const Index j0 = std::max<Index>(0, -origin), j1 = std::min<Index>(span, g.w - origin);
  const T* dxs = disp + ((b * 2) * g.h + y) * g.w;
  const T* dys = disp + ((b * 2 + 1) * g.h + y) * g.w;
  const T* image = key + b * g.h * g.w * c;
  for (Index j = j0; j < j1; ++j) {
    const Index x = origin + j;
    const T sx = static_cast<T>(x) + dxs[x];
    const T sy = static_cast<T>(y) + dys[x];
    // Outside [-1, size] no corner is inside (this also rejects NaN, for which every comparison is false).
    if (!(sx > T(-1) && sx < static_cast<T>(g.w) && sy > T(-1) && sy < static_cast<T>(g.h))) continue;
    const T fx = std::floor(sx), fy = std::floor(sy);
    const Index ix = static_cast<Index>(fx), iy = static_cast<Index>(fy);
    const T wx1 = sx - fx, wy1 = sy - fy, wx0 = T(1) - wx1, wy0 = T(1) - wy1;
    std::fill(pixel, pixel + c, T(0));
    const T weights[4] = {wx0 * wy0, wx1 * wy0, wx0 * wy1, wx1 * wy1};
    for (int corner = 0; corner < 4; ++corner) {
      const Index cx = ix + (corner & 1), cy = iy + (corner >> 1);
      if (cx < 0 || cx >= g.w || cy < 0 || cy >= g.h) continue;
      const T wgt = weights[corner];
      const T* s = image + (cy * g.w + cx) * c;
      for (Index ch = 0; ch < c; ++ch) pixel[ch] += wgt * s[ch];
    }
    for (Index ch = 0; ch < c; ++ch) dst[ch * span + j] = pixel[ch];
  }
}

// Depthwise 3x3 convolution with bias of three channels-first source rows (nullptr: a row outside the image,
// all zeros), each C x in_span, into dst (C x out_span): dst[ch][j] = bias[ch] + sum w[ch][dy][dx] *
// src[dy][ch][j + dx]. in_span >= out_span + 2.
template <typename T>
void depthwise_row(const T* const src[3], Index in_span, const T* w, const T* bias, Index c, Index out_span, T* dst) {
  for (Index ch = 0; ch < c; ++ch) {
    T* __restrict o = dst + ch * out_span;
    const T bch = bias[ch];
    for (Index j = 0; j < out_span; ++j) o[j] = bch;
    for (int dy = 0; dy < 3; ++dy) {
      if (src[dy] == nullptr) continue;
      const T* __restrict s = src[dy] + ch * in_span;
      const T w0 = w[ch * 9 + dy * 3], w1 = w[ch * 9 + dy * 3 + 1], w2 = w[ch * 9 + dy * 3 + 2];
      for (Index j = 0; j < out_span; ++j) o[j] += w0 * s[j] + w1 * s[j + 1] + w2 * s[j + 2];
    }
  }
}

// Zeroes the columns of a channels-first row (C x span, column j = image column origin + j) outside [0, w).
template <typename T>
void zero_outside(T* row, Index c, Index span, Index origin, Index w) {
  const Index j0 = std::clamp<Index>(-origin, 0, span), j1 = std::clamp<Index>(w - origin, j0, span);
  for (Index ch = 0; ch < c; ++ch) {
    std::fill(row + ch * span, row + ch * span + j0, T(0));
    std::fill(row + ch * span + j1, row + (ch + 1) * span, T(0));
  }
}

// One strip (image columns xs .. xs + strip - 1) of rows [ya, yb) of image b. Ring spans: K and V start at xs - r
// and cover the tiles' windows; warped rows one more column on each side; upsampled rows start at xs - 1.
template <typename T>
struct CreffWorker {
  StripRing<T> up, warped, k, v;
  std::vector<T> q, pixel;
  VectorArray<T> tile, logits, attn, out;
  std::vector<const T*> k_rows, v_rows;

  explicit CreffWorker(const CreffPlan<T>& p)
      : up(3, p.g.c, p.strip + 2),
        warped(3, p.g.c, p.strip + 2 * p.g.r + 2),
        k(p.g.window, p.g.c, p.strip + 2 * p.g.r),
        v(p.g.window, p.g.c, p.strip + 2 * p.g.r),
        q(static_cast<size_t>(p.g.c * p.strip)),
        pixel(static_cast<size_t>(p.g.c)),
        tile(p.g.c),
        logits(p.g.ww),
        attn(p.g.ww),
        out(p.g.c),
        k_rows(static_cast<size_t>(p.g.window)),
        v_rows(static_cast<size_t>(p.g.window)) {}

  void run(const T* lr, const T* key, const T* disp, const CreffPlan<T>& p, T scale, Index b, Index xs, Index ya,
           Index yb, T* dst) {
    const Geometry& g = p.g;
    const Index c = g.c, r = g.r;
    const Index kv_origin = xs - r, warp_origin = xs - r - 1, up_origin = xs - 1;
    Index next_kv = std::max<Index>(0, ya - r);
    Index next_warp = std::max<Index>(0, next_kv - 1);
    Index next_up = std::max<Index>(0, ya - 1);
    for (Index y = ya; y < yb; ++y) {
      // K and V rows up to y + r, each from warped rows one above to one below.
      for (const Index last = std::min(g.h - 1, y + r); next_kv <= last; ++next_kv) {
        for (const Index need = std::min(g.h - 1, next_kv + 1); next_warp <= need; ++next_warp) {
          warped_row(key, disp, p, b, next_warp, warp_origin, warped.span(), warped.row(next_warp), pixel.data());
        }
        const T* rows[3];
        for (int dy = 0; dy < 3; ++dy) {
          const Index src = next_kv + dy - 1;
          rows[dy] = src >= 0 && src < g.h ? warped.row(src) : nullptr;
        }
        depthwise_row(rows, warped.span(), p.wk, p.bk, c, k.span(), k.row(next_kv));
        depthwise_row(rows, warped.span(), p.wv, p.bv, c, v.span(), v.row(next_kv));
        zero_outside(k.row(next_kv), c, k.span(), kv_origin, g.w);
        zero_outside(v.row(next_kv), c, v.span(), kv_origin, g.w);
      }
      // Upsampled rows up to y + 1, then Q of row y.
      for (const Index last = std::min(g.h - 1, y + 1); next_up <= last; ++next_up) {
        upsampled_row(lr, p, b, next_up, up_origin, up.span(), up.row(next_up));
      }
      const T* rows[3];
      for (int dy = 0; dy < 3; ++dy) {
        const Index src = y + dy - 1;
        rows[dy] = src >= 0 && src < g.h ? up.row(src) : nullptr;
      }
      depthwise_row(rows, up.span(), p.wq, p.bq, c, p.strip, q.data());
      // Attention over the tiles of the strip, plus the upsampled LR feature (column xs + j is up column j + 1).
      const Index top = y - r;
      const int dy0 = static_cast<int>(std::max<Index>(0, -top));
      const int dy1 = static_cast<int>(std::min<Index>(g.window, g.h - top));
      const T* up_row = up.row(y);
      for (Index t = 0; t * kLanes<T> < p.strip && xs + t * kLanes<T> < g.w; ++t) {
        const Index col = t * kLanes<T>;
        for (int dy = dy0; dy < dy1; ++dy) {
          k_rows[static_cast<size_t>(dy)] = k.row(top + dy) + col;
          v_rows[static_cast<size_t>(dy)] = v.row(top + dy) + col;
        }
        const Window<T> kw{nullptr, 0, k.span(), dy0, dy1, k_rows.data()};
        const Window<T> vw{nullptr, 0, v.span(), dy0, dy1, v_rows.data()};
        for (Index ch = 0; ch < c; ++ch) tile[ch] = load(q.data() + ch * p.strip + col);
        window_dots(tile.data(), kw, g, logits.data());
        if (scale != T(1)) {
          for (Index o = 0; o < g.ww; ++o) logits[o] *= scale;
        }
        softmax<T>(logits.data(), g.ww, attn.data());
        const Vec<T>* a = attn.data();
        weighted_sum([&](int wy, int wx) { return a[wy * g.window + wx]; }, vw, g, out.data());
        const Index valid = std::min<Index>(kLanes<T>, g.w - xs - col);
        T* o = dst + ((b * g.h + y) * g.w + xs + col) * c;
        for (Index i = 0; i < valid; ++i) {
          for (Index ch = 0; ch < c; ++ch) o[i * c + ch] = up_row[ch * up.span() + col + i + 1] + out[ch][i];
        }
      }
    }
  }
};

// Runs the fused CReFF over every (image, strip, band) work item; out: (N, H, W, C).
template <typename T>
void creff_forward(const T* lr, const T* key, const T* disp, CreffPlan<T> p, T scale, T* dst, Index threads) {
  const Geometry& g = p.g;
  // Strip width: whole tiles, so that the rings of one worker (about 21 rows of C x strip) stay near 512 KiB.
  const Index budget = (Index{512} * 1024) / static_cast<Index>(sizeof(T)) / std::max<Index>(1, 21 * g.c);
  const Index max_strip = ((g.w + kLanes<T> - 1) / kLanes<T>) * kLanes<T>;
  p.strip = std::clamp<Index>((budget / kLanes<T>) * kLanes<T>, kLanes<T>, max_strip);
  p.strips = (g.w + p.strip - 1) / p.strip;
  // Bands of rows: enough work items for every thread, at least 16 rows each (bands recompute 2r + 2 halo rows).
  const Index want = std::max<Index>(1, (4 * threads + g.n * p.strips - 1) / (g.n * p.strips));
  p.bands = std::clamp<Index>(std::min(want, g.h / 16), 1, std::max<Index>(1, g.h));
  const Index items = g.n * p.strips * p.bands;
  const Index workers = std::max<Index>(1, std::min(threads, items));
  std::vector<CreffWorker<T>> state;
  state.reserve(static_cast<size_t>(workers));
  for (Index i = 0; i < workers; ++i) state.emplace_back(p);
  parallel_for(items, workers, [&](Index worker, Index begin, Index end) {
    CreffWorker<T>& s = state[static_cast<size_t>(worker)];
    for (Index item = begin; item < end; ++item) {
      const Index b = item / (p.strips * p.bands);
      const Index strip = (item / p.bands) % p.strips;
      const Index band = item % p.bands;
      const Index ya = g.h * band / p.bands, yb = g.h * (band + 1) / p.bands;
      s.run(lr, key, disp, p, scale, b, strip * p.strip, ya, yb, dst);
    }
  });
}
