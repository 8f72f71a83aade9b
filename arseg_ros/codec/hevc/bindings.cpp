// pybind11 module arseg_ros.codec._hevc: the incremental HEVC header parser. Records are returned as plain
// dicts/tuples; arseg_ros/codec/hevc.py turns them into dataclasses. ParseError becomes
// arseg_ros.codec.HevcParseError (a ValueError) with kind, nal_index, picture, slice, ctu and bit_position.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "motion_derivation.hpp"
#include "parser.hpp"
#include "slice_data.hpp"

namespace py = pybind11;
using namespace arseg::hevc;

namespace {

PyObject* g_parse_error = nullptr;  // the HevcParseError type, alive as long as the process

py::list trace_to_list(const Trace& t) {
  py::list out;
  for (const auto& f : t) out.append(py::make_tuple(f.position, f.name, f.value));
  return out;
}

py::list refs_to_list(const std::vector<RefEntry>& refs) {
  py::list out;
  for (const auto& r : refs) out.append(py::make_tuple(r.poc, r.long_term, r.missing, r.dpb_id));
  return out;
}

py::dict header_to_dict(const SliceHeader& h) {
  py::dict d;
  d["nal_unit_type"] = h.nal.nal_unit_type;
  d["temporal_id"] = h.nal.temporal_id();
  d["first_slice_segment_in_pic_flag"] = h.first_slice_segment_in_pic_flag;
  d["no_output_of_prior_pics_flag"] = h.no_output_of_prior_pics_flag;
  d["slice_pic_parameter_set_id"] = h.slice_pic_parameter_set_id;
  d["dependent_slice_segment_flag"] = h.dependent_slice_segment_flag;
  d["slice_segment_address"] = h.slice_segment_address;
  d["slice_type"] = h.slice_type;
  d["pic_output_flag"] = h.pic_output_flag;
  d["slice_pic_order_cnt_lsb"] = h.slice_pic_order_cnt_lsb;
  d["short_term_ref_pic_set_sps_flag"] = h.short_term_ref_pic_set_sps_flag;
  d["short_term_ref_pic_set_idx"] = h.short_term_ref_pic_set_idx;
  std::vector<int32_t> s0(h.st_rps.delta_poc_s0.begin(), h.st_rps.delta_poc_s0.begin() + h.st_rps.num_negative_pics);
  std::vector<int32_t> s1(h.st_rps.delta_poc_s1.begin(), h.st_rps.delta_poc_s1.begin() + h.st_rps.num_positive_pics);
  d["delta_poc_s0"] = s0;
  d["delta_poc_s1"] = s1;
  d["num_long_term_sps"] = h.num_long_term_sps;
  d["num_long_term_pics"] = h.num_long_term_pics;
  d["slice_temporal_mvp_enabled_flag"] = h.slice_temporal_mvp_enabled_flag;
  d["slice_sao_luma_flag"] = h.slice_sao_luma_flag;
  d["slice_sao_chroma_flag"] = h.slice_sao_chroma_flag;
  d["num_ref_idx_l0_active_minus1"] = h.num_ref_idx_l0_active_minus1;
  d["num_ref_idx_l1_active_minus1"] = h.num_ref_idx_l1_active_minus1;
  d["ref_pic_list_modification_flag_l0"] = h.ref_pic_list_modification_flag_l0;
  d["ref_pic_list_modification_flag_l1"] = h.ref_pic_list_modification_flag_l1;
  d["mvd_l1_zero_flag"] = h.mvd_l1_zero_flag;
  d["cabac_init_flag"] = h.cabac_init_flag;
  d["collocated_from_l0_flag"] = h.collocated_from_l0_flag;
  d["collocated_ref_idx"] = h.collocated_ref_idx;
  d["has_pred_weight_table"] = h.has_pred_weight_table;
  d["MaxNumMergeCand"] = h.MaxNumMergeCand;
  d["slice_qp_delta"] = h.slice_qp_delta;
  d["SliceQpY"] = h.SliceQpY;
  d["slice_cb_qp_offset"] = h.slice_cb_qp_offset;
  d["slice_cr_qp_offset"] = h.slice_cr_qp_offset;
  d["slice_deblocking_filter_disabled_flag"] = h.slice_deblocking_filter_disabled_flag;
  d["slice_beta_offset_div2"] = h.slice_beta_offset_div2;
  d["slice_tc_offset_div2"] = h.slice_tc_offset_div2;
  d["slice_loop_filter_across_slices_enabled_flag"] = h.slice_loop_filter_across_slices_enabled_flag;
  d["num_entry_point_offsets"] = h.num_entry_point_offsets;
  d["offset_len_minus1"] = h.offset_len_minus1;
  d["slice_segment_header_extension_length"] = h.slice_segment_header_extension_length;
  d["NumPicTotalCurr"] = h.NumPicTotalCurr;
  d["slice_data_byte_offset"] = h.slice_data_byte_offset;
  return d;
}

// A numpy array of `shape` (C order) over the vector's data, which it takes over: no copy.
template <typename T, typename Alloc>
py::array_t<T> adopt(std::vector<T, Alloc>&& values, std::vector<py::ssize_t> shape) {
  using Owner = std::vector<T, Alloc>;
  auto owner = std::make_unique<Owner>(std::move(values));
  T* data = owner->data();
  py::capsule base(owner.get(), [](void* p) { delete static_cast<Owner*>(p); });
  owner.release();
  return py::array_t<T>(std::move(shape), data, base);
}

// Per-4x4-block motion arrays of a picture, C order: pred_flag (2, Hb, Wb) uint8, mv (2, Hb, Wb, 2) int16, ref_idx
// (2, Hb, Wb) int8, ref_poc (2, Hb, Wb) int32 (INT32_MIN where unused), ref_long_term (2, Hb, Wb) uint8.
py::dict motion_to_dict(DenseMotion&& m) {
  const py::ssize_t hb = m.blocks_h, wb = m.blocks_w;
  py::dict d;
  d["pred_flag"] = adopt(std::move(m.pred_flag), {2, hb, wb});
  d["mv"] = adopt(std::move(m.mv), {2, hb, wb, 2});
  d["ref_idx"] = adopt(std::move(m.ref_idx), {2, hb, wb});
  d["ref_poc"] = adopt(std::move(m.ref_poc), {2, hb, wb});
  d["ref_long_term"] = adopt(std::move(m.ref_long_term), {2, hb, wb});
  return d;
}

// The coding structure of a picture on the 4x4 luma block grid (Hb, Wb), copied from the slice-data layer:
// log2_cb_size (log2 of the CU size), pred_mode (PredMode: 0 not coded, 1 intra, 2 inter, 3 skip), part_mode
// (PartMode 0..7, 7.4.9.5 Table 7-10 order), merge_flag (1 where the covering inter PU is merged, 7.4.9.6; skipped
// CUs included).
struct DenseCoding {
  int blocks_w = 0, blocks_h = 0;
  std::vector<uint8_t> log2_cb_size, pred_mode, part_mode, merge_flag;
};

DenseCoding dense_coding(const PictureCodingState& c, int blocks_w, int blocks_h) {
  static_assert(sizeof(PredMode) == 1, "PredMode is stored as one byte per block");
  if (blocks_w > c.grid_width || blocks_h > c.grid_height) {
    throw ParseError(ErrorKind::InvalidValue, "coding export: block grid larger than the picture state");
  }
  DenseCoding d;
  d.blocks_w = blocks_w;
  d.blocks_h = blocks_h;
  const size_t n = static_cast<size_t>(blocks_w) * static_cast<size_t>(blocks_h);
  d.log2_cb_size.resize(n);
  d.pred_mode.resize(n);
  d.part_mode.resize(n);
  d.merge_flag.resize(n);
  const auto w = static_cast<size_t>(blocks_w);
  for (int by = 0; by < blocks_h; ++by) {
    const size_t src = c.grid_index(0, 4 * by);
    const size_t dst = static_cast<size_t>(by) * w;
    std::copy_n(c.log2_cb_size.begin() + static_cast<std::ptrdiff_t>(src), w, d.log2_cb_size.begin() + dst);
    std::copy_n(reinterpret_cast<const uint8_t*>(c.pred_mode.data()) + src, w, d.pred_mode.data() + dst);
    std::copy_n(c.part_mode.begin() + static_cast<std::ptrdiff_t>(src), w, d.part_mode.begin() + dst);
    for (size_t x = 0; x < w; ++x) {
      const int32_t pu = c.pu_index[src + x];
      if (pu >= 0 && static_cast<size_t>(pu) >= c.pus.size()) {
        throw ParseError(ErrorKind::InvalidValue, "coding export: block refers to a prediction unit not parsed");
      }
      d.merge_flag[dst + x] = pu >= 0 && c.pus[static_cast<size_t>(pu)].merge_flag ? 1 : 0;
    }
  }
  return d;
}

py::dict coding_to_dict(DenseCoding&& c) {
  const py::ssize_t hb = c.blocks_h, wb = c.blocks_w;
  py::dict d;
  d["log2_cb_size"] = adopt(std::move(c.log2_cb_size), {hb, wb});
  d["pred_mode"] = adopt(std::move(c.pred_mode), {hb, wb});
  d["part_mode"] = adopt(std::move(c.part_mode), {hb, wb});
  d["merge_flag"] = adopt(std::move(c.merge_flag), {hb, wb});
  return d;
}

// What the slice-data layer and the motion derivation produced for one picture.
struct PictureSyntax {
  DenseMotion motion;
  DenseCoding coding;
};

py::dict picture_to_dict(const PictureRecord& p, std::optional<PictureSyntax>&& syntax) {
  py::dict d;
  d["decode_index"] = p.decode_index;
  d["poc"] = p.poc;
  d["nal_unit_type"] = p.nal_unit_type;
  d["temporal_id"] = p.temporal_id;
  d["is_irap"] = p.is_irap;
  d["no_rasl_output_flag"] = p.no_rasl_output_flag;
  d["decodable"] = p.decodable;
  d["pic_output_flag"] = p.pic_output_flag;
  d["width"] = p.width;
  d["height"] = p.height;
  d["cropped_width"] = p.cropped_width;
  d["cropped_height"] = p.cropped_height;
  d["crop"] = py::make_tuple(p.crop_left, p.crop_right, p.crop_top, p.crop_bottom);
  d["sps_id"] = p.sps_id;
  d["pps_id"] = p.pps_id;
  d["dpb_id"] = p.dpb_id;
  py::dict rps;
  rps["st_curr_before"] = p.rps.PocStCurrBefore;
  rps["st_curr_after"] = p.rps.PocStCurrAfter;
  rps["st_foll"] = p.rps.PocStFoll;
  rps["lt_curr"] = p.rps.PocLtCurr;
  rps["lt_foll"] = p.rps.PocLtFoll;
  rps["generated_missing"] = p.rps.generated_missing;
  d["rps"] = rps;
  py::list slices;
  for (const auto& s : p.slices) {
    py::dict sd;
    sd["nal_index"] = s.nal_index;
    sd["slice_type"] = s.slice_type;
    sd["address"] = s.slice_segment_address;
    sd["dependent"] = s.dependent_slice_segment_flag;
    sd["qp"] = s.slice_qp_y;
    sd["ref_l0"] = refs_to_list(s.ref_list[0]);
    sd["ref_l1"] = refs_to_list(s.ref_list[1]);
    sd["entry_point_offset_minus1"] = s.entry_point_offset_minus1;
    sd["substream_offsets"] = s.substream_offsets;
    sd["slice_data_byte_offset"] = s.slice_data_byte_offset;
    sd["header"] = header_to_dict(*s.header);
    sd["fields"] = trace_to_list(s.fields);
    slices.append(sd);
  }
  d["slices"] = slices;
  d["motion"] = syntax ? py::object(motion_to_dict(std::move(syntax->motion))) : py::object(py::none());
  d["coding"] = syntax ? py::object(coding_to_dict(std::move(syntax->coding))) : py::object(py::none());
  return d;
}

// Completed pictures with the motion and coding structure of each (std::nullopt: not derived, e.g. a skipped RASL
// picture).
struct Completed {
  std::vector<PictureRecord> pictures;
  std::vector<std::optional<PictureSyntax>> motion;
};

py::list pictures_to_list(Completed&& done) {
  py::list out;
  for (size_t i = 0; i < done.pictures.size(); ++i) {
    out.append(picture_to_dict(done.pictures[i], std::move(done.motion[i])));
  }
  return out;
}

py::list dumps_to_list(std::vector<NalDump>&& dumps) {
  py::list out;
  for (const auto& d : dumps) {
    py::dict x;
    x["nal_index"] = d.nal_index;
    x["nal_unit_type"] = d.nal_unit_type;
    x["temporal_id"] = d.temporal_id;
    x["title"] = d.title;
    x["fields"] = trace_to_list(d.fields);
    out.append(x);
  }
  return out;
}

// A parser plus a lock: the GIL is released while parsing, so calls on one object are serialised here.
class PyParser {
 public:
  PyParser(bool trace, bool motion) : parser_(ParserOptions{trace}) {
    if (motion) parser_.set_slice_data_hook([this](const SliceContext& c) { on_slice(c); });
  }

  py::list feed(const py::buffer& data) {
    return pictures_to_list(run(data, [this](const uint8_t* p, size_t n) { parser_.feed(p, n); }));
  }
  py::list feed_access_unit(const py::buffer& data, int length_size) {
    return pictures_to_list(
        run(data, [this, length_size](const uint8_t* p, size_t n) { parser_.feed_access_unit(p, n, length_size); }));
  }
  py::list flush() {
    Completed done;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      parser_.flush();
      done = collect();
    }
    return pictures_to_list(std::move(done));
  }
  py::list take_pictures() {
    Completed done;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      done = collect();
    }
    return pictures_to_list(std::move(done));
  }
  py::list take_dumps() {
    std::vector<NalDump> dumps;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      dumps = parser_.take_dumps();
    }
    return dumps_to_list(std::move(dumps));
  }
  py::dict stats() {
    ParserStats s;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      s = parser_.stats();
    }
    py::dict d;
    d["nal_units"] = s.nal_units;
    d["pictures"] = s.pictures;
    d["dropped_pictures"] = s.dropped_pictures;
    d["errors"] = s.errors;
    d["generated_missing"] = s.generated_missing;
    return d;
  }

 private:
  // Parses with the GIL released and the parser locked; returns the pictures completed by the call. On a
  // ParseError the completed pictures stay queued (the Python wrapper collects them with take_pictures()).
  template <typename F>
  Completed run(const py::buffer& data, F&& f) {
    const py::buffer_info info = data.request();
    if (info.ndim > 1 || (info.ndim == 1 && info.strides[0] != info.itemsize)) {
      throw py::value_error("expected a contiguous bytes-like object");
    }
    const auto* p = static_cast<const uint8_t*>(info.ptr);
    const auto n = static_cast<size_t>(info.size * info.itemsize);
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    f(p, n);
    return collect();
  }

  // Slice-data hook: parses the slice segment data and derives its motion (slice_data.hpp, motion_derivation.hpp).
  void on_slice(const SliceContext& c) {
    if (!c.picture || c.substream_offsets.empty()) {
      throw ParseError(ErrorKind::InvalidValue, "slice segment without a picture or a slice data offset");
    }
    if (!coding_ || coding_dpb_id_ != c.picture->id) {
      finish_motion();
      if (spare_coding_) {
        spare_coding_->reset(c.sps, c.picture->decode_index);
        coding_ = std::move(spare_coding_);
      } else {
        coding_ = std::make_unique<PictureCodingState>(c.sps, c.picture->decode_index);
      }
      coding_dpb_id_ = c.picture->id;
      field_ = start_motion_field(*coding_, c.picture);
    }
    try {
      const std::vector<size_t> entry_points(c.substream_offsets.begin() + 1, c.substream_offsets.end());
      parse_slice_segment_data(c.sps, c.pps, c.layout, c.header, c.rbsp.bytes.data(), c.rbsp.bytes.size(),
                               c.substream_offsets.front(), entry_points, *coding_);
      derive_slice_motion(c.sps, c.pps, c.layout, c.header, c.ref_list0, c.ref_list1, *coding_, *field_);
    } catch (...) {
      // The parser drops the picture: so does the motion state.
      coding_.reset();
      field_.reset();
      coding_dpb_id_ = -1;
      throw;
    }
  }

  // The picture in progress is complete: keep its dense motion until its record is taken.
  void finish_motion() {
    if (coding_ && field_) {
      DenseMotion motion = dense_motion(*field_, *coding_);
      DenseCoding coding = dense_coding(*coding_, motion.blocks_w, motion.blocks_h);
      done_motion_[coding_dpb_id_] = PictureSyntax{std::move(motion), std::move(coding)};
    }
    if (coding_) spare_coding_ = std::move(coding_);
    field_.reset();
    coding_dpb_id_ = -1;
  }

  // Takes the completed pictures and attaches their motion; motion kept for pictures the parser dropped (DPB ids
  // below the one taken) is discarded.
  Completed collect() {
    Completed done;
    done.pictures = parser_.take_pictures();
    for (const PictureRecord& p : done.pictures) {
      if (p.dpb_id >= 0 && p.dpb_id == coding_dpb_id_) finish_motion();
      const auto it = done_motion_.find(p.dpb_id);
      if (p.dpb_id < 0 || it == done_motion_.end()) {
        done.motion.emplace_back();
        continue;
      }
      done.motion.emplace_back(std::move(it->second));
      done_motion_.erase(done_motion_.begin(), std::next(it));
    }
    return done;
  }

  StreamParser parser_;
  std::mutex mutex_;
  // Motion derivation state (only with motion=True): the picture in progress and the finished ones not yet taken.
  std::unique_ptr<PictureCodingState> coding_;
  std::unique_ptr<PictureCodingState> spare_coding_;  // the last finished picture's state, reused for the next one
  std::shared_ptr<MotionField> field_;
  int64_t coding_dpb_id_ = -1;
  std::map<int64_t, PictureSyntax> done_motion_;
};

}  // namespace

PYBIND11_MODULE(_hevc, m) {
  m.doc() = "HEVC parse-only header layers: NAL units, parameter sets, slice headers, POC, RPS, reference lists";

  g_parse_error = PyErr_NewException("arseg_ros.codec.HevcParseError", PyExc_ValueError, nullptr);
  m.add_object("HevcParseError", py::handle(g_parse_error));
  py::register_exception_translator([](std::exception_ptr ptr) {
    try {
      if (ptr) std::rethrow_exception(ptr);
    } catch (const ParseError& e) {
      const py::object type = py::reinterpret_borrow<py::object>(g_parse_error);
      const py::object inst = type(py::str(e.what()));
      const Location& w = e.where();
      inst.attr("kind") = py::str(to_string(e.kind()));
      inst.attr("message") = py::str(e.message());
      inst.attr("nal_index") = w.nal_index;
      inst.attr("picture") = w.picture;
      inst.attr("slice") = w.slice;
      inst.attr("ctu") = w.ctu;
      inst.attr("bit_position") = w.bit_position;
      PyErr_SetObject(g_parse_error, inst.ptr());
    }
  });

  py::class_<PyParser>(m, "Parser")
      .def(py::init<bool, bool>(), py::arg("trace") = false, py::arg("motion") = false)
      .def("feed", &PyParser::feed, py::arg("data"))
      .def("feed_access_unit", &PyParser::feed_access_unit, py::arg("data"), py::arg("length_size"))
      .def("flush", &PyParser::flush)
      .def("take_pictures", &PyParser::take_pictures)
      .def("take_dumps", &PyParser::take_dumps)
      .def("stats", &PyParser::stats);

  m.def(
      "split_annexb",
      [](const py::bytes& data) {
        const std::string s = data;
        py::list out;
        for (const auto& [offset, size] : split_annexb(reinterpret_cast<const uint8_t*>(s.data()), s.size())) {
          out.append(py::bytes(s.data() + offset, size));
        }
        return out;
      },
      py::arg("data"), "The NAL units (escaped, header included) of an Annex B byte stream.");
}
