// Driver for the HEVC motion vector derivation: reads an Annex B file, runs the header parser, the slice-data layer
// and the luma motion vector derivation (motion_derivation.hpp) over every slice segment of every decodable picture.
// Prints one summary line, or the first error; the exit status is 1 on a parse error, 2 on a usage / file error,
// 0 otherwise.
//
// Usage: motion_driver FILE [--no-motion] [--dump OUT]
//        motion_driver --arithmetic
//   --arithmetic: print "add MVP MVD RESULT" and "scale MV TD TB RESULT" lines of add_mvd_wrapped and
//     scale_mv_component over a grid of extreme and ordinary inputs (checked against the formulas by the test).
//   --no-motion: parse only (no derivation), to measure what the derivation costs.
//   Summary: pictures, pus (parsed), derived_pus, bi_pus (derived with predFlagL0 = predFlagL1 = 1), ms (wall
//   clock) and cpu_ms (process CPU time) of parsing + derivation.
//   --dump OUT: write, per picture in decode order (little-endian): the tag "MVF1", int32 decode_index, poc, width,
//     height (luma samples), then with Hb = ceil(height / 4), Wb = ceil(width / 4), each in C order:
//     pred_flag uint8[2][Hb][Wb] (predFlagL0 / L1), mv int16[2][Hb][Wb][2] (mvLX x, y in quarter samples; 0 where
//     the list is unused), ref_poc int32[2][Hb][Wb] (POC of RefPicListX[refIdxLX]; INT32_MIN where unused),
//     ref_idx int8[2][Hb][Wb] (refIdxLX; -1 where unused).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <vector>

#include "arseg_ros/codec/hevc/motion_derivation.hpp"
#include "arseg_ros/codec/hevc/parser.hpp"
#include "arseg_ros/codec/hevc/slice_data.hpp"
#include "driver_io.hpp"

namespace {

using arseg::hevc::MotionField;
using arseg::hevc::PictureCodingState;

// One "MVF1" record of --dump (layout in the file comment).
void dump_picture(std::FILE* out, const MotionField& field, const PictureCodingState& coding) {
  const arseg::hevc::DenseMotion d = arseg::hevc::dense_motion(field, coding);
  const int32_t header[4] = {static_cast<int32_t>(d.decode_index), static_cast<int32_t>(d.poc), d.width, d.height};
  std::fwrite("MVF1", 1, 4, out);
  std::fwrite(header, sizeof(int32_t), 4, out);
  std::fwrite(d.pred_flag.data(), 1, d.pred_flag.size(), out);
  std::fwrite(d.mv.data(), sizeof(int16_t), d.mv.size(), out);
  std::fwrite(d.ref_poc.data(), sizeof(int32_t), d.ref_poc.size(), out);
  std::fwrite(d.ref_idx.data(), 1, d.ref_idx.size(), out);
}

// --arithmetic: the vector arithmetic over a grid of inputs.
int print_arithmetic() {
  const int32_t mvs[] = {-32768, -32767, -16385, -4097, -257, -129, -128, -2, -1, 0, 1, 2, 127, 128, 255,
                         256, 4095, 16384, 32767};
  const int64_t pocs[] = {-1000000, -300, -129, -128, -127, -64, -17, -3, -2, -1, 0,
                          1,        2,    3,    16,   64,   127, 128, 300, 1000000};
  for (const int32_t mvp : mvs) {
    for (const int32_t mvd : mvs) {
      std::printf("add %d %d %d\n", mvp, mvd, arseg::hevc::add_mvd_wrapped(mvp, mvd));
    }
  }
  for (const int32_t mv : mvs) {
    for (const int64_t td : pocs) {
      for (const int64_t tb : pocs) {
        std::printf("scale %d %lld %lld %d\n", mv, static_cast<long long>(td), static_cast<long long>(tb),
                    arseg::hevc::scale_mv_component(mv, td, tb));
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE [--no-motion] [--dump OUT] | --arithmetic\n", argv[0]);
    return 2;
  }
  if (std::strcmp(argv[1], "--arithmetic") == 0) return print_arithmetic();
  bool derive = true;
  std::FILE* dump = nullptr;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-motion") == 0) {
      derive = false;
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

  int64_t pictures = 0, pus = 0, derived_pus = 0, bi_pus = 0;
  std::unique_ptr<PictureCodingState> state;
  std::shared_ptr<MotionField> field;
  int64_t state_dpb_id = -1;
  const auto finish_picture = [&]() {
    if (!state) return;
    ++pictures;
    pus += static_cast<int64_t>(state->pus.size());
    if (field) {
      derived_pus += static_cast<int64_t>(field->pus.size());
      for (const arseg::hevc::BlockMotion& b : field->pus) bi_pus += b.pred_flags == 3;
      if (dump != nullptr) dump_picture(dump, *field, *state);
    }
    state.reset();
    field.reset();
  };

  arseg::hevc::StreamParser parser;
  parser.set_slice_data_hook([&](const arseg::hevc::SliceContext& c) {
    if (!c.picture) throw arseg::hevc::ParseError(arseg::hevc::ErrorKind::InvalidValue, "slice without a picture");
    if (!state || state_dpb_id != c.picture->id) {
      finish_picture();
      state = std::make_unique<PictureCodingState>(c.sps, c.picture->decode_index);
      state_dpb_id = c.picture->id;
      if (derive) field = arseg::hevc::start_motion_field(*state, c.picture);
    }
    if (c.substream_offsets.empty()) {
      throw arseg::hevc::ParseError(arseg::hevc::ErrorKind::InvalidValue, "no slice data offset");
    }
    const std::vector<size_t> entry_points(c.substream_offsets.begin() + 1, c.substream_offsets.end());
    arseg::hevc::parse_slice_segment_data(c.sps, c.pps, c.layout, c.header, c.rbsp.bytes.data(), c.rbsp.bytes.size(),
                                          c.substream_offsets.front(), entry_points, *state);
    if (field) {
      arseg::hevc::derive_slice_motion(c.sps, c.pps, c.layout, c.header, c.ref_list0, c.ref_list1, *state, *field);
    }
  });

  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  try {
    // Fed in chunks, taking the finished picture records like a streaming consumer (they hold DPB pictures).
    constexpr size_t kChunk = 1 << 16;
    for (size_t pos = 0; pos < data.size(); pos += kChunk) {
      parser.feed(data.data() + pos, std::min(kChunk, data.size() - pos));
      parser.take_pictures();
    }
    parser.flush();
    parser.take_pictures();
  } catch (const arseg::hevc::ParseError& e) {
    std::printf("error: %s\n", e.what());
    if (dump != nullptr) std::fclose(dump);
    return 1;
  }
  finish_picture();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const double cpu_ms = 1000.0 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  if (dump != nullptr && std::fclose(dump) != 0) {
    std::fprintf(stderr, "cannot write the dump\n");
    return 2;
  }
  std::printf("summary: pictures=%lld pus=%lld derived_pus=%lld bi_pus=%lld dropped_pictures=%lld ms=%.1f "
              "cpu_ms=%.1f\n",
              static_cast<long long>(pictures), static_cast<long long>(pus), static_cast<long long>(derived_pus),
              static_cast<long long>(bi_pus), static_cast<long long>(parser.stats().dropped_pictures), ms,
              cpu_ms);
  return 0;
}
