// Motion-vector oracle for the tests: decodes an HEVC Annex B file with libde265 (Debian's source, built by
// test/oracle/libde265.py) and dumps, for every coded picture in DECODE order, the final motion data of every
// 4x4 luma block as libde265 derived it (merge, AMVP and TMVP included).
//
// Usage: de265_motion_dump IN.hevc OUT.mv
//
// Feeding: the Annex B stream is split into NAL units here and pushed one by one. A NAL unit that starts a new
// access unit (H.265 7.4.2.4.4: AUD, VPS, SPS, PPS, prefix SEI, reserved 41..44/48..55, or a VCL NAL unit with
// first_slice_segment_in_pic_flag, once the current access unit has a VCL NAL unit) first closes the previous
// picture: end of frame is signalled, the decoder is drained (so the picture's slices are decoded and its
// deblocking/SAO has run) and the picture is dumped. An SPS NAL unit byte-identical to the previous SPS NAL unit
// is not passed on (libde265 1.0.11 may otherwise reject references across a re-sent SPS). Decoded picture hash
// SEI checking is turned off.
//
// Output (little-endian; the program refuses to run on a big-endian host): the 8-byte magic "DE265MV1", then
// one record per coded picture in decode order, then an end record. Every record starts with a 4-byte tag
// followed by int32 fields:
//   "PICT" decode_index poc nal_unit_type width height output integrity, then the arrays of Hb x Wb blocks
//          (Hb = height / 4, Wb = width / 4; width and height are the coded luma size, before cropping), each in
//          C order: pred_flag uint8[2][Hb][Wb], mv int16[2][Hb][Wb][2] (x, y in quarter samples), ref_idx
//          int8[2][Hb][Wb], ref_poc int32[2][Hb][Wb], intra uint8[Hb][Wb]. Where pred_flag[X] is 0 (intra
//          blocks included) mv[X] is (0, 0), ref_idx[X] is -1 and ref_poc[X] is INT32_MIN. ref_poc is the POC of
//          RefPicListX[ref_idx] of the slice that covers the block. output: libde265's PicOutputFlag (0 for
//          pic_output_flag 0 and for RASL pictures of a CRA that starts decoding; those are decoded all the same).
//          integrity: libde265's INTEGRITY_* code (0 correct, 1 unavailable reference, 2 not decoded,
//          3 decoding errors, 4 derived from a faulty reference).
//   "SKIP" decode_index nal_unit_type: a coded picture libde265 produced no picture for (its first slice
//          segment was rejected, e.g. missing parameter sets or unusable references).
//   "END!" pictures skipped sps_dropped: counts; its presence marks a complete dump.
// Exit status: 0 on success (decoder warnings go to stderr), 1 on I/O or internal errors, 2 on bad usage.
#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "libde265/de265.h"
#include "libde265/decctx.h"
#include "libde265/image.h"
#include "libde265/motion.h"
#include "libde265/slice.h"

namespace {

constexpr int kNalAud = 35;
constexpr int kNalVps = 32;
constexpr int kNalSps = 33;
constexpr int kNalPps = 34;
constexpr int kNalPrefixSei = 39;
constexpr int kMaxStalls = 16;
constexpr int32_t kNoRefPoc = std::numeric_limits<int32_t>::min();

struct NalUnit {
  const uint8_t* data;
  size_t size;

  int type() const { return (data[0] >> 1) & 0x3f; }
  int layer_id() const { return ((data[0] & 1) << 5) | (data[1] >> 3); }
  bool is_vcl() const { return type() < 32; }
  bool first_slice_segment_in_pic() const { return size > 2 && (data[2] & 0x80) != 0; }

  // Whether this NAL unit, following a VCL NAL unit of the current access unit, starts the next one.
  bool starts_access_unit() const {
    if (layer_id() != 0) {
      return false;
    }
    const int t = type();
    if (is_vcl()) {
      return first_slice_segment_in_pic();
    }
    return t == kNalAud || t == kNalVps || t == kNalSps || t == kNalPps || t == kNalPrefixSei ||
           (t >= 41 && t <= 44) || (t >= 48 && t <= 55);
  }
};

// Splits an Annex B byte stream at its start codes; leading/trailing zero bytes of each unit are dropped.
std::vector<NalUnit> split_annex_b(const std::vector<uint8_t>& stream) {
  std::vector<size_t> starts;
  const size_t n = stream.size();
  for (size_t i = 0; i + 2 < n; ++i) {
    if (stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1) {
      starts.push_back(i + 3);
      i += 2;
    }
  }
  std::vector<NalUnit> units;
  for (size_t k = 0; k < starts.size(); ++k) {
    size_t end = k + 1 < starts.size() ? starts[k + 1] - 3 : n;
    while (end > starts[k] && stream[end - 1] == 0) {
      --end;
    }
    if (end - starts[k] >= 2) {
      units.push_back({stream.data() + starts[k], end - starts[k]});
    }
  }
  return units;
}

class Writer {
 public:
  explicit Writer(const char* path) : out_(path, std::ios::binary) {
    if (!out_) {
      throw std::runtime_error(std::string("cannot open ") + path + " for writing");
    }
    out_.write("DE265MV1", 8);
  }

  void tag(const char (&name)[5]) { out_.write(name, 4); }

  void i32(int32_t value) { bytes(&value, sizeof value); }

  template <class T>
  void array(const std::vector<T>& values) {
    bytes(values.data(), values.size() * sizeof(T));
  }

  void close() {
    out_.close();
    if (!out_) {
      throw std::runtime_error("write failed");
    }
  }

 private:
  void bytes(const void* data, size_t size) {
    out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out_) {
      throw std::runtime_error("write failed");
    }
  }

  std::ofstream out_;
};

class MotionDumper {
 public:
  explicit MotionDumper(const char* out_path) : writer_(out_path), decoder_(de265_new_decoder()) {
    if (decoder_ == nullptr) {
      throw std::runtime_error("de265_new_decoder failed");
    }
    de265_set_parameter_bool(decoder_, DE265_DECODER_PARAM_BOOL_SEI_CHECK_HASH, 0);
    de265_set_parameter_bool(decoder_, DE265_DECODER_PARAM_SUPPRESS_FAULTY_PICTURES, 0);
  }

  ~MotionDumper() { de265_free_decoder(decoder_); }

  MotionDumper(const MotionDumper&) = delete;
  MotionDumper& operator=(const MotionDumper&) = delete;

  void run(const std::vector<NalUnit>& units) {
    for (const NalUnit& nal : units) {
      if (pending_type_ >= 0 && nal.starts_access_unit()) {
        finish_picture();
      }
      if (nal.type() == kNalSps && nal.layer_id() == 0) {
        const std::vector<uint8_t> sps(nal.data, nal.data + nal.size);
        if (sps == last_sps_) {
          ++sps_dropped_;
          continue;
        }
        last_sps_ = sps;
      }
      if (nal.is_vcl() && nal.layer_id() == 0 && pending_type_ < 0) {
        pending_type_ = nal.type();
      }
      if (nal.size > static_cast<size_t>(std::numeric_limits<int>::max())) {
        throw std::runtime_error("NAL unit too large");
      }
      check(de265_push_NAL(decoder_, nal.data, static_cast<int>(nal.size), 0, nullptr), "de265_push_NAL");
    }
    if (pending_type_ >= 0) {
      finish_picture();
    }
    check(de265_flush_data(decoder_), "de265_flush_data");
    drain();
    writer_.tag("END!");
    writer_.i32(pictures_);
    writer_.i32(skipped_);
    writer_.i32(sps_dropped_);
    writer_.close();
    if (sps_dropped_ > 0) {
      std::fprintf(stderr, "de265_motion_dump: dropped %d repeated identical SPS NAL units\n", sps_dropped_);
    }
  }

 private:
  static void check(de265_error err, const char* what) {
    if (!de265_isOK(err)) {
      throw std::runtime_error(std::string(what) + ": " + de265_get_error_text(err));
    }
  }

  decoder_context* context() const { return reinterpret_cast<decoder_context*>(decoder_); }

  // Runs the decoder until it needs input, releasing output pictures (they stay in the DPB until libde265
  // needs the slot for a new picture, which only happens while a later slice header is processed). Decoder
  // errors and warnings are reported and decoding goes on; each call consumes a NAL unit or a slice, so only a
  // DPB without free slot can stall it.
  void drain() {
    int stalled = 0;
    for (;;) {
      int more = 0;
      const de265_error err = de265_decode(decoder_, &more);
      int released = 0;
      while (de265_get_next_picture(decoder_) != nullptr) {
        ++released;
      }
      report_warnings();
      if (err == DE265_ERROR_WAITING_FOR_INPUT_DATA) {
        return;
      }
      if (err == DE265_ERROR_IMAGE_BUFFER_FULL) {
        if (released == 0 && ++stalled > kMaxStalls) {
          throw std::runtime_error("decoded picture buffer full of reference pictures");
        }
        continue;
      }
      stalled = 0;
      if (err != DE265_OK) {
        std::fprintf(stderr, "de265_motion_dump: picture %d: libde265: %s\n", decode_index_,
                     de265_get_error_text(err));
        continue;
      }
      if (!more) {
        return;
      }
    }
  }

  void report_warnings() {
    for (de265_error w = de265_get_warning(decoder_); w != DE265_OK; w = de265_get_warning(decoder_)) {
      std::fprintf(stderr, "de265_motion_dump: picture %d: libde265 warning: %s\n", decode_index_,
                   de265_get_error_text(w));
    }
  }

  // The picture libde265 allocated last that has slices: the current picture (generated stand-ins for
  // missing references have none).
  de265_image* newest_picture() const {
    decoder_context* ctx = context();
    de265_image* newest = nullptr;
    for (int i = 0; ctx->has_image(i); ++i) {
      de265_image* img = ctx->get_image(i);
      if (img != nullptr && img->is_allocated() && !img->slices.empty() &&
          (newest == nullptr || img->get_ID() > newest->get_ID())) {
        newest = img;
      }
    }
    return newest;
  }

  void finish_picture() {
    drain();
    de265_image* img = newest_picture();
    const bool is_new = img != nullptr && (!have_last_id_ || img->get_ID() != last_id_);
    const int32_t output = is_new && img->PicOutputFlag ? 1 : 0;
    de265_push_end_of_frame(decoder_);
    drain();
    if (is_new) {
      write_picture(*img, output);
      last_id_ = img->get_ID();
      have_last_id_ = true;
      ++pictures_;
    } else {
      std::fprintf(stderr, "de265_motion_dump: picture %d (NAL type %d) produced no decoded picture\n",
                   decode_index_, pending_type_);
      writer_.tag("SKIP");
      writer_.i32(decode_index_);
      writer_.i32(pending_type_);
      ++skipped_;
    }
    ++decode_index_;
    pending_type_ = -1;
  }

  void write_picture(const de265_image& img, int32_t output) {
    const int width = img.get_width();
    const int height = img.get_height();
    if (width <= 0 || height <= 0 || width % 4 != 0 || height % 4 != 0) {
      throw std::runtime_error("unexpected picture size " + std::to_string(width) + "x" + std::to_string(height));
    }
    const size_t wb = static_cast<size_t>(width / 4);
    const size_t hb = static_cast<size_t>(height / 4);
    const size_t plane = wb * hb;
    std::vector<uint8_t> pred_flag(2 * plane, 0);
    std::vector<int16_t> mv(2 * plane * 2, 0);
    std::vector<int8_t> ref_idx(2 * plane, -1);
    std::vector<int32_t> ref_poc(2 * plane, kNoRefPoc);
    std::vector<uint8_t> intra(plane, 0);

    for (size_t by = 0; by < hb; ++by) {
      for (size_t bx = 0; bx < wb; ++bx) {
        const int x = static_cast<int>(bx * 4);
        const int y = static_cast<int>(by * 4);
        const size_t b = by * wb + bx;
        if (img.get_pred_mode(x, y) == MODE_INTRA) {
          intra[b] = 1;
          continue;
        }
        const slice_segment_header* shdr = img.get_SliceHeaderCtb(x >> img.get_sps().Log2CtbSizeY,
                                                                  y >> img.get_sps().Log2CtbSizeY);
        if (shdr == nullptr) {
          throw std::runtime_error("block without slice header at " + std::to_string(x) + "," + std::to_string(y));
        }
        const PBMotion& motion = img.get_mv_info(x, y);
        const std::array<int, 2> num_active = {shdr->num_ref_idx_l0_active, shdr->num_ref_idx_l1_active};
        for (size_t l = 0; l < 2; ++l) {
          if (!motion.predFlag[l]) {
            continue;
          }
          const int r = motion.refIdx[l];
          if (r < 0 || r >= num_active[l] || r >= MAX_NUM_REF_PICS) {
            throw std::runtime_error("refIdx " + std::to_string(r) + " out of range at " + std::to_string(x) +
                                     "," + std::to_string(y));
          }
          pred_flag[l * plane + b] = 1;
          mv[(l * plane + b) * 2] = motion.mv[l].x;
          mv[(l * plane + b) * 2 + 1] = motion.mv[l].y;
          ref_idx[l * plane + b] = static_cast<int8_t>(r);
          ref_poc[l * plane + b] = shdr->RefPicList_POC[l][r];
        }
      }
    }

    writer_.tag("PICT");
    writer_.i32(decode_index_);
    writer_.i32(img.PicOrderCntVal);
    writer_.i32(img.nal_hdr.nal_unit_type);
    writer_.i32(width);
    writer_.i32(height);
    writer_.i32(output);
    writer_.i32(img.integrity);
    writer_.array(pred_flag);
    writer_.array(mv);
    writer_.array(ref_idx);
    writer_.array(ref_poc);
    writer_.array(intra);
  }

  Writer writer_;
  de265_decoder_context* decoder_;
  std::vector<uint8_t> last_sps_;
  int pending_type_ = -1;  // NAL unit type of the current picture's first VCL NAL unit; -1: none yet
  int decode_index_ = 0;
  int pictures_ = 0;
  int skipped_ = 0;
  int sps_dropped_ = 0;
  uint32_t last_id_ = 0;
  bool have_last_id_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IN.hevc OUT.mv\n", argv[0]);
    return 2;
  }
  const uint16_t probe = 1;
  if (*reinterpret_cast<const uint8_t*>(&probe) != 1) {
    std::fprintf(stderr, "de265_motion_dump: the dump format is little-endian; this host is not\n");
    return 1;
  }
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "de265_motion_dump: cannot open %s\n", argv[1]);
    return 1;
  }
  const std::vector<uint8_t> stream((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    MotionDumper dumper(argv[2]);
    dumper.run(split_annex_b(stream));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "de265_motion_dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
