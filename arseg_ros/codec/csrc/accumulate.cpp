// Native inner loop of the motion accumulation (arseg_ros/codec/motion.py, MotionAccumulator._compose): for every
// 4x4 block and both lists, compose the block's motion vector with its reference picture's accumulated displacement,
// looked up bilinearly between block centres over the reference's valid blocks only. The Python side keeps the
// bookkeeping (which maps belong to the current keyframe, hole filling); this file only does the per-block work.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

struct Reference {
  int64_t poc;
  const float* disp;   // [2][Hb][Wb] pixels
  const uint8_t* valid;  // [Hb][Wb]
};

void check_shape(const py::buffer_info& b, std::vector<py::ssize_t> shape, const char* name) {
  if (b.shape != shape) {
    std::string expected = "(";
    for (size_t i = 0; i < shape.size(); ++i) expected += (i ? ", " : "") + std::to_string(shape[i]);
    throw std::invalid_argument(std::string(name) + ": expected shape " + expected + ")");
  }
}

// Bilinear look-up of a reference map at pixel position (px, py) over its valid blocks; false if no valid block has
// a positive weight.
bool lookup(const Reference& r, int hb, int wb, float px, float py, float& dx, float& dy) {
  const float u = std::clamp((px - 1.5f) / 4.0f, 0.0f, static_cast<float>(wb - 1));
  const float v = std::clamp((py - 1.5f) / 4.0f, 0.0f, static_cast<float>(hb - 1));
  const int u0 = std::min(static_cast<int>(u), wb - 1), v0 = std::min(static_cast<int>(v), hb - 1);
  const int u1 = std::min(u0 + 1, wb - 1), v1 = std::min(v0 + 1, hb - 1);
  const float fu = u - static_cast<float>(u0), fv = v - static_cast<float>(v0);
  const int us[4] = {u0, u1, u0, u1}, vs[4] = {v0, v0, v1, v1};
  const float ws[4] = {(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv};
  const size_t plane = static_cast<size_t>(hb) * static_cast<size_t>(wb);
  float total = 0, sx = 0, sy = 0;
  for (int k = 0; k < 4; ++k) {
    const size_t i = static_cast<size_t>(vs[k]) * static_cast<size_t>(wb) + static_cast<size_t>(us[k]);
    if (!r.valid[i]) continue;
    total += ws[k];
    sx += ws[k] * r.disp[i];
    sy += ws[k] * r.disp[plane + i];
  }
  if (total <= 1e-6f) return false;
  dx = sx / total;
  dy = sy / total;
  return true;
}

// compose(mv, pred_flag, ref_poc, ref_pocs, ref_disps, ref_valids) -> (displacement (2, Hb, Wb) float32,
// valid (Hb, Wb) bool). mv: (2, Hb, Wb, 2) int16 quarter-pel; pred_flag: (2, Hb, Wb) bool (false for intra blocks);
// ref_poc: (2, Hb, Wb) int64; ref_pocs[i] names the picture whose accumulated map is ref_disps[i] (2, Hb, Wb) float32
// with validity ref_valids[i] (Hb, Wb) bool. A block's displacement is the mean over the lists whose chain is valid.
py::tuple compose(py::array_t<int16_t, py::array::c_style> mv, py::array_t<bool, py::array::c_style> pred_flag,
                  py::array_t<int64_t, py::array::c_style> ref_poc, const std::vector<int64_t>& ref_pocs,
                  const std::vector<FloatArray>& ref_disps,
                  const std::vector<py::array_t<bool, py::array::c_style>>& ref_valids) {
  const py::buffer_info pb = pred_flag.request();
  if (pb.ndim != 3 || pb.shape[0] != 2) throw std::invalid_argument("pred_flag: expected shape (2, Hb, Wb)");
  const int hb = static_cast<int>(pb.shape[1]), wb = static_cast<int>(pb.shape[2]);
  check_shape(mv.request(), {2, hb, wb, 2}, "mv");
  check_shape(ref_poc.request(), {2, hb, wb}, "ref_poc");
  if (ref_pocs.size() != ref_disps.size() || ref_pocs.size() != ref_valids.size()) {
    throw std::invalid_argument("ref_pocs, ref_disps and ref_valids must have the same length");
  }
  std::vector<Reference> refs;
  for (size_t i = 0; i < ref_pocs.size(); ++i) {
    check_shape(ref_disps[i].request(), {2, hb, wb}, "ref_disps[i]");
    check_shape(ref_valids[i].request(), {hb, wb}, "ref_valids[i]");
    refs.push_back({ref_pocs[i], ref_disps[i].data(), reinterpret_cast<const uint8_t*>(ref_valids[i].data())});
  }
  const size_t plane = static_cast<size_t>(hb) * static_cast<size_t>(wb);
  FloatArray out({py::ssize_t{2}, static_cast<py::ssize_t>(hb), static_cast<py::ssize_t>(wb)});
  py::array_t<bool> valid({static_cast<py::ssize_t>(hb), static_cast<py::ssize_t>(wb)});
  float* o = out.mutable_data();
  bool* ok = valid.mutable_data();
  const int16_t* m = mv.data();
  const bool* p = pred_flag.data();
  const int64_t* rp = ref_poc.data();
  {
    py::gil_scoped_release release;
    for (int by = 0; by < hb; ++by) {
      for (int bx = 0; bx < wb; ++bx) {
        const size_t i = static_cast<size_t>(by) * static_cast<size_t>(wb) + static_cast<size_t>(bx);
        float sx = 0, sy = 0;
        int count = 0;
        for (int l = 0; l < 2; ++l) {
          const size_t li = static_cast<size_t>(l) * plane + i;
          if (!p[li]) continue;
          const Reference* r = nullptr;
          for (const Reference& cand : refs) {
            if (cand.poc == rp[li]) {
              r = &cand;
              break;
            }
          }
          if (r == nullptr) continue;
          const float mx = 0.25f * m[2 * li], my = 0.25f * m[2 * li + 1];
          float dx = 0, dy = 0;
          if (!lookup(*r, hb, wb, 4.0f * bx + 1.5f + mx, 4.0f * by + 1.5f + my, dx, dy)) continue;
          sx += mx + dx;
          sy += my + dy;
          ++count;
        }
        ok[i] = count > 0;
        o[i] = count ? sx / static_cast<float>(count) : 0.0f;
        o[plane + i] = count ? sy / static_cast<float>(count) : 0.0f;
      }
    }
  }
  return py::make_tuple(out, valid);
}

// fill_invalid(displacement, valid) -> displacement with every invalid block filled: in passes, each invalid block
// next to (4-neighbourhood) an already filled block takes the mean of those neighbours, until all are filled; all
// zeros if no block is valid. Inputs are not modified.
FloatArray fill_invalid(const FloatArray& displacement, py::array_t<bool, py::array::c_style> valid) {
  const py::buffer_info vb = valid.request();
  if (vb.ndim != 2) throw std::invalid_argument("valid: expected shape (Hb, Wb)");
  const int hb = static_cast<int>(vb.shape[0]), wb = static_cast<int>(vb.shape[1]);
  check_shape(displacement.request(), {2, hb, wb}, "displacement");
  const size_t plane = static_cast<size_t>(hb) * static_cast<size_t>(wb);
  FloatArray out({py::ssize_t{2}, static_cast<py::ssize_t>(hb), static_cast<py::ssize_t>(wb)});
  float* o = out.mutable_data();
  const float* d = displacement.data();
  const bool* v = valid.data();
  {
    py::gil_scoped_release release;
    std::vector<uint8_t> filled(plane), next(plane);
    size_t missing = 0;
    for (size_t i = 0; i < plane; ++i) {
      filled[i] = v[i] ? 1 : 0;
      o[i] = v[i] ? d[i] : 0.0f;
      o[plane + i] = v[i] ? d[plane + i] : 0.0f;
      missing += v[i] ? 0 : 1;
    }
    while (missing > 0 && missing < plane) {
      next = filled;
      size_t done = 0;
      for (int y = 0; y < hb; ++y) {
        for (int x = 0; x < wb; ++x) {
          const size_t i = static_cast<size_t>(y) * static_cast<size_t>(wb) + static_cast<size_t>(x);
          if (filled[i]) continue;
          float sx = 0, sy = 0;
          int n = 0;
          const int nx[4] = {x - 1, x + 1, x, x}, ny[4] = {y, y, y - 1, y + 1};
          for (int k = 0; k < 4; ++k) {
            if (nx[k] < 0 || ny[k] < 0 || nx[k] >= wb || ny[k] >= hb) continue;
            const size_t j = static_cast<size_t>(ny[k]) * static_cast<size_t>(wb) + static_cast<size_t>(nx[k]);
            if (!filled[j]) continue;
            sx += o[j];
            sy += o[plane + j];
            ++n;
          }
          if (n == 0) continue;
          o[i] = sx / static_cast<float>(n);
          o[plane + i] = sy / static_cast<float>(n);
          next[i] = 1;
          ++done;
        }
      }
      filled.swap(next);
      missing -= done;
    }
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_accumulate, m) {
  m.doc() = "Per-block composition of motion vectors with accumulated displacements (see arseg_ros.codec.motion).";
  m.def("compose", &compose, py::arg("mv"), py::arg("pred_flag"), py::arg("ref_poc"), py::arg("ref_pocs"),
        py::arg("ref_disps"), py::arg("ref_valids"));
  m.def("fill_invalid", &fill_invalid, py::arg("displacement"), py::arg("valid"));
}
