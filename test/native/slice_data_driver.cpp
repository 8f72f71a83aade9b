// Driver for the HEVC slice-data layer: reads an Annex B file, runs the incremental header parser over it and parses
// the slice segment data of every slice segment of every decodable picture (slice_data.hpp). Prints one summary line,
// or the first error; the exit status is 1 on a parse error, 2 on a usage / file error, 0 otherwise.
//
// Usage: slice_data_driver FILE [--pictures] [--dump OUT]
//   --pictures: also one line per picture.
//   --dump OUT: write, per picture in decode order, its 4x4-block maps (little-endian): the tag "SDP1", int32
//     decode_index, width, height (luma samples), then with Hb = ceil(height / 4), Wb = ceil(width / 4), each in C
//     order: coded uint8[Hb][Wb] (a CU covers the block), intra uint8[Hb][Wb] (CuPredMode == MODE_INTRA), explicit
//     uint8[Hb][Wb] (an inter PU with merge_flag 0 covers it), pred_flag uint8[2][Hb][Wb] and ref_idx
//     int8[2][Hb][Wb] of that PU's syntax (inter_pred_idc, ref_idx_lX; 0 / -1 where not explicit).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <optional>
#include <vector>

#include "arseg_ros/codec/hevc/parser.hpp"
#include "arseg_ros/codec/hevc/slice_data.hpp"
#include "driver_io.hpp"

namespace {

using arseg::hevc::CodingCounts;
using arseg::hevc::PictureCodingState;

struct Totals {
  int64_t pictures = 0;
  int64_t slice_segments = 0;
  int64_t ctbs_per_picture = 0;  // PicSizeInCtbsY of the last picture
  int64_t ctbs_expected = 0;     // sum of PicSizeInCtbsY over the pictures
  int64_t max_entry_points = 0;
  int64_t slice_type_count[3] = {0, 0, 0};  // B, P, I slice segments
  CodingCounts counts;
};

void add(CodingCounts& total, const CodingCounts& c) {
  total.ctus += c.ctus;
  total.intra_cus += c.intra_cus;
  total.inter_cus += c.inter_cus;
  total.skip_cus += c.skip_cus;
  total.pcm_cus += c.pcm_cus;
  total.transquant_bypass_cus += c.transquant_bypass_cus;
  total.pus += c.pus;
  total.merge_pus += c.merge_pus;
  total.bi_pus += c.bi_pus;
  total.transform_skip_blocks += c.transform_skip_blocks;
  total.cu_qp_deltas += c.cu_qp_deltas;
  total.sao_ctus += c.sao_ctus;
  total.coded_residual_blocks += c.coded_residual_blocks;
}

// One "SDP1" record of --dump (layout in the file comment).
void dump_picture(std::FILE* out, const PictureCodingState& pic) {
  const int wb = (pic.pic_width + 3) / 4;
  const int hb = (pic.pic_height + 3) / 4;
  const size_t plane = static_cast<size_t>(wb) * static_cast<size_t>(hb);
  std::vector<uint8_t> coded(plane, 0), intra(plane, 0), explicit_pu(plane, 0), pred_flag(2 * plane, 0);
  std::vector<int8_t> ref_idx(2 * plane, -1);
  for (int by = 0; by < hb; ++by) {
    for (int bx = 0; bx < wb; ++bx) {
      const size_t k = static_cast<size_t>(by) * static_cast<size_t>(wb) + static_cast<size_t>(bx);
      const size_t g = pic.grid_index(4 * bx, 4 * by);
      coded[k] = pic.pred_mode.at(g) != arseg::hevc::PredMode::kNotCoded;
      intra[k] = pic.pred_mode.at(g) == arseg::hevc::PredMode::kIntra;
      const int32_t index = pic.pu_index.at(g);
      if (index < 0) continue;
      const arseg::hevc::PredictionUnit& pu = pic.pus.at(static_cast<size_t>(index));
      if (pu.merge_flag) continue;
      explicit_pu[k] = 1;
      for (int list = 0; list < 2; ++list) {
        const bool used = pu.inter_pred_idc == arseg::hevc::kPredBi || pu.inter_pred_idc == list;
        pred_flag[static_cast<size_t>(list) * plane + k] = used ? 1 : 0;
        ref_idx[static_cast<size_t>(list) * plane + k] = used ? pu.ref_idx[list] : -1;
      }
    }
  }
  const int32_t header[3] = {static_cast<int32_t>(pic.picture_index), pic.pic_width, pic.pic_height};
  std::fwrite("SDP1", 1, 4, out);
  std::fwrite(header, sizeof(int32_t), 3, out);
  std::fwrite(coded.data(), 1, plane, out);
  std::fwrite(intra.data(), 1, plane, out);
  std::fwrite(explicit_pu.data(), 1, plane, out);
  std::fwrite(pred_flag.data(), 1, 2 * plane, out);
  std::fwrite(ref_idx.data(), 1, 2 * plane, out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE [--pictures] [--dump OUT]\n", argv[0]);
    return 2;
  }
  bool per_picture = false;
  std::FILE* dump = nullptr;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--pictures") == 0) {
      per_picture = true;
    } else if (std::strcmp(argv[i], "--dump") == 0 && i + 1 < argc && dump == nullptr) {
      dump = driver_io::open_dump(argv[++i]);
      if (dump == nullptr) return 2;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  const std::optional<std::vector<uint8_t>> input = driver_io::read_file(argv[1]);
  if (!input) return 2;
  const std::vector<uint8_t>& data = *input;

  Totals totals;
  std::unique_ptr<PictureCodingState> state;
  int64_t state_dpb_id = -1;
  const auto finish_picture = [&]() {
    if (!state) return;
    ++totals.pictures;
    totals.slice_segments += static_cast<int64_t>(state->slices.size());
    for (const auto& s : state->slices) {
      if (s.slice_type >= 0 && s.slice_type < 3) ++totals.slice_type_count[s.slice_type];
    }
    totals.ctbs_per_picture = static_cast<int64_t>(state->ctb_slice_addr.size());
    totals.ctbs_expected += totals.ctbs_per_picture;
    add(totals.counts, state->counts);
    if (dump != nullptr) dump_picture(dump, *state);
    if (per_picture) {
      std::printf("picture %lld slices %zu ctus %lld pus %lld\n", static_cast<long long>(state->picture_index),
                  state->slices.size(), static_cast<long long>(state->counts.ctus),
                  static_cast<long long>(state->counts.pus));
    }
    state.reset();
  };

  arseg::hevc::StreamParser parser;
  parser.set_slice_data_hook([&](const arseg::hevc::SliceContext& c) {
    if (!c.picture) throw arseg::hevc::ParseError(arseg::hevc::ErrorKind::InvalidValue, "slice without a picture");
    if (!state || state_dpb_id != c.picture->id) {
      finish_picture();
      state = std::make_unique<PictureCodingState>(c.sps, c.picture->decode_index);
      state_dpb_id = c.picture->id;
    }
    if (c.substream_offsets.empty()) {
      throw arseg::hevc::ParseError(arseg::hevc::ErrorKind::InvalidValue, "no slice data offset");
    }
    const std::vector<size_t> entry_points(c.substream_offsets.begin() + 1, c.substream_offsets.end());
    if (static_cast<int64_t>(entry_points.size()) > totals.max_entry_points) {
      totals.max_entry_points = static_cast<int64_t>(entry_points.size());
    }
    arseg::hevc::parse_slice_segment_data(c.sps, c.pps, c.layout, c.header, c.rbsp.bytes.data(), c.rbsp.bytes.size(),
                                          c.substream_offsets.front(), entry_points, *state);
  });

  const auto t0 = std::chrono::steady_clock::now();
  try {
    parser.feed(data.data(), data.size());
    parser.flush();
  } catch (const arseg::hevc::ParseError& e) {
    std::printf("error: %s\n", e.what());
    if (dump != nullptr) std::fclose(dump);
    return 1;
  }
  finish_picture();
  if (dump != nullptr && std::fclose(dump) != 0) {
    std::fprintf(stderr, "cannot write the dump\n");
    return 2;
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const CodingCounts& c = totals.counts;
  std::printf(
      "summary: pictures=%lld slice_segments=%lld ctus=%lld ctbs_per_picture=%lld ctbs_expected=%lld "
      "intra_cus=%lld inter_cus=%lld skip_cus=%lld pcm_cus=%lld transquant_bypass_cus=%lld pus=%lld merge_pus=%lld "
      "bi_pus=%lld transform_skip_blocks=%lld cu_qp_deltas=%lld sao_ctus=%lld residual_blocks=%lld "
      "max_entry_points=%lld b_slices=%lld p_slices=%lld i_slices=%lld dropped_pictures=%lld ms=%.1f\n",
      static_cast<long long>(totals.pictures), static_cast<long long>(totals.slice_segments),
      static_cast<long long>(c.ctus), static_cast<long long>(totals.ctbs_per_picture),
      static_cast<long long>(totals.ctbs_expected), static_cast<long long>(c.intra_cus),
      static_cast<long long>(c.inter_cus), static_cast<long long>(c.skip_cus), static_cast<long long>(c.pcm_cus),
      static_cast<long long>(c.transquant_bypass_cus), static_cast<long long>(c.pus),
      static_cast<long long>(c.merge_pus), static_cast<long long>(c.bi_pus),
      static_cast<long long>(c.transform_skip_blocks), static_cast<long long>(c.cu_qp_deltas),
      static_cast<long long>(c.sao_ctus), static_cast<long long>(c.coded_residual_blocks),
      static_cast<long long>(totals.max_entry_points), static_cast<long long>(totals.slice_type_count[0]),
      static_cast<long long>(totals.slice_type_count[1]), static_cast<long long>(totals.slice_type_count[2]),
      static_cast<long long>(parser.stats().dropped_pictures), ms);
  return 0;
}
