// NAL unit layer: Annex B byte-stream and length-prefixed splitting, nal_unit_header() (7.3.1.2) and the
// NAL unit types of Table 7-1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "bitreader.hpp"

namespace arseg::hevc {

// Table 7-1 nal_unit_type values.
enum NalType : int {
  kTrailN = 0,
  kTrailR = 1,
  kTsaN = 2,
  kTsaR = 3,
  kStsaN = 4,
  kStsaR = 5,
  kRadlN = 6,
  kRadlR = 7,
  kRaslN = 8,
  kRaslR = 9,
  kRsvVclN14 = 14,
  kBlaWLp = 16,
  kBlaWRadl = 17,
  kBlaNLp = 18,
  kIdrWRadl = 19,
  kIdrNLp = 20,
  kCraNut = 21,
  kRsvIrapVcl23 = 23,
  kVps = 32,
  kSps = 33,
  kPps = 34,
  kAud = 35,
  kEos = 36,
  kEob = 37,
  kFd = 38,
  kPrefixSei = 39,
  kSuffixSei = 40,
};

// Coded slice segment types this parser decodes: 0..9 and 16..21 (reserved VCL types are ignored, 7.4.2.2).
inline bool is_slice_nal(int t) { return (t >= kTrailN && t <= kRaslR) || (t >= kBlaWLp && t <= kCraNut); }
inline bool is_vcl(int t) { return t >= 0 && t <= 31; }
inline bool is_irap(int t) { return t >= kBlaWLp && t <= kRsvIrapVcl23; }
inline bool is_idr(int t) { return t == kIdrWRadl || t == kIdrNLp; }
inline bool is_bla(int t) { return t >= kBlaWLp && t <= kBlaNLp; }
inline bool is_cra(int t) { return t == kCraNut; }
inline bool is_rasl(int t) { return t == kRaslN || t == kRaslR; }
inline bool is_radl(int t) { return t == kRadlN || t == kRadlR; }
// Sub-layer non-reference picture (7.4.2.2): TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N, RSV_VCL_N10/12/14.
inline bool is_sub_layer_non_reference(int t) { return t <= kRsvVclN14 && t % 2 == 0; }

// A short name of a NAL unit type ("IDR_W_RADL", "SPS", ...).
const char* nal_type_name(int t);

// 7.3.1.2 nal_unit_header()
struct NalHeader {
  int nal_unit_type = 0;
  int nuh_layer_id = 0;
  int nuh_temporal_id_plus1 = 1;
  int temporal_id() const { return nuh_temporal_id_plus1 - 1; }
};

// Reads the two-byte header; forbidden_zero_bit must be 0 and nuh_temporal_id_plus1 non-zero.
NalHeader parse_nal_unit_header(BitReader& r);

// A byte range [offset, offset + size) inside a buffer.
using ByteRange = std::pair<size_t, size_t>;

// Annex B B.2: the NAL units of a complete byte stream (3- or 4-byte start codes; leading and trailing
// zero bytes dropped). Bytes before the first start code are ignored.
std::vector<ByteRange> split_annexb(const uint8_t* data, size_t size);

// Length-prefixed NAL units (ISO/IEC 14496-15 hvcC, lengthSizeMinusOne + 1 = length_size in {1, 2, 4}).
// Throws ParseError(Truncated) when a length runs past the end, InvalidValue for a bad length_size.
std::vector<ByteRange> split_length_prefixed(const uint8_t* data, size_t size, int length_size);

// Incremental Annex B splitter: a NAL unit is complete when the next start code arrives or at finish().
class AnnexBSplitter {
 public:
  using Sink = std::function<void(const uint8_t* nal, size_t size)>;

  // Appends a chunk and calls sink for every NAL unit completed by it.
  void feed(const uint8_t* data, size_t size, const Sink& sink);
  // Ends the stream: emits the last NAL unit (if any) and resets.
  void finish(const Sink& sink);
  // Bytes held while waiting for the end of the current NAL unit.
  size_t buffered() const { return buffer_.size(); }

 private:
  void emit(size_t end, const Sink& sink);

  std::vector<uint8_t> buffer_;
  size_t scan_ = 0;          // next buffer offset to scan for a start code
  bool in_nal_ = false;      // a start code was seen; buffer_ holds the NAL unit after it
};

}  // namespace arseg::hevc
