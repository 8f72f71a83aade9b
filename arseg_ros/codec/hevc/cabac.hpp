// CABAC layer of the parse-only HEVC parser (ITU-T H.265 clause 9.3; clause numbers of the 04/2013 edition, later
// editions' numbers in brackets where they differ): the context variables and their initialisation (9.3.2.2), the
// arithmetic decoding engine (9.3.2.5, 9.3.4.3) and the bypass binarisations that do not depend on any other layer
// (9.3.3.2 TR, 9.3.3.3 EGk, 9.3.3.4 [9.3.3.5] FL). Syntax-specific ctxInc derivations belong to the slice-data layer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "cabac_tables.hpp"
#include "errors.hpp"

namespace arseg::hevc {

// One context variable (9.3.2.2): the probability state index pStateIdx and the most probable symbol valMps.
struct ContextModel {
  uint8_t state = 0;  // pStateIdx, 0..62 (63 is never reached by a context-coded bin)
  uint8_t mps = 0;    // valMps, 0 or 1
};

// Every context variable of a slice segment, indexed by ctx::ELEMENT + ctxInc (see cabac_tables.hpp). A plain
// 346-byte array, so the WPP storage and synchronisation processes (9.3.2.3, 9.3.2.4) and the restore at the start of
// a dependent slice segment are a copy assignment.
using ContextSet = std::array<ContextModel, ctx::NUM_CONTEXTS>;

// initType of a slice segment (9.3.2.2): I -> 0; P -> cabac_init_flag ? 2 : 1; B -> cabac_init_flag ? 1 : 2.
// slice_type is the coded value (7.4.7.1, Table 7-7): 0 = B, 1 = P, 2 = I; anything else raises InvalidValue.
int init_type(int slice_type, bool cabac_init_flag);

// One context variable from its initValue (9.3.2.2, equations 9-4..9-6). slice_qp_y is clipped to 0..51 as the
// formula does, so any SliceQpY (-QpBdOffsetY..51) is accepted.
ContextModel init_context(uint8_t init_value, int slice_qp_y);

// Initialisation of all context variables for initType 0..2 (9.3.2.2). Slots that the initType does not have
// (P/B-only elements for initType 0, part_mode ctxInc 1..3 for initType 0) get the neutral filler initValue 154;
// a conforming parser never reads them. An init_type outside 0..2 raises InvalidValue.
void init_contexts(ContextSet& contexts, int init_type, int slice_qp_y);

// The arithmetic decoding engine (9.3.4.3) over the RBSP bytes of one slice segment or substream (emulation
// prevention bytes already removed). The caller owns the bytes; they must outlive the decoder.
//
// Representation: ivlCurrRange is kept as in the spec (9 bits). ivlOffset is kept scaled in a 64-bit window,
// value_ = (ivlOffset << bits_) | (bits_ look-ahead bits), refilled several bytes at a time, so a bin costs one
// compare and no per-bit reads. Every result (bins, ivlCurrRange, ivlOffset, the bit position) equals the spec's
// bit-by-bit process.
//
// Out-of-data behaviour: the spec never reads past the end of the slice segment data of a conforming stream. Here
// a read past the end of the given range yields zero bits and never touches memory outside [data, data + size).
// Look-ahead beyond the end is harmless; what counts is the spec's position: bit_position() is the number of bits
// the spec process has read (9 at initialisation plus one per renormalisation shift or bypass bin), and overran()
// is true once it exceeds the data. Bins decoded after that are decoded from the implied zero bits; the caller
// raises Truncated (or Desync) when overran() is set, e.g. after each CTU or at the end of the segment.
//
// Termination (9.3.4.3.5): when decode_terminate() returns 1 (end_of_slice_segment_flag, end_of_subset_one_bit,
// pcm_flag), the engine does no renormalisation and stops. The last bit it has read is then the final bit of the
// encoder's flush (EncodeFlush of the informative encoder, 9.3.5: ivlCurrRange = 2, RenormE,
// PutBit((ivlLow >> 9) & 1), WriteBits(((ivlLow >> 7) & 3) | 1, 2)), which is always 1: it is the rbsp_stop_one_bit
// of rbsp_slice_segment_trailing_bits() after end_of_slice_segment_flag, the alignment_bit_equal_to_one of
// byte_alignment() after end_of_subset_one_bit, and it is followed by the pcm_alignment_zero_bits after pcm_flag.
// The caller must not read that bit again; the rest of its byte must be zero (trailing_bits_ok() checks both), and
// bytes_consumed() is the byte where the next data starts (PCM samples, the next substream's entry point, or the
// end of the slice data / its cabac_zero_words). After a terminate bin equal to 1 the engine must be restarted with
// reinit_at() before it decodes further bins (another terminate bin raises InvalidValue; other bins stay memory-safe
// but mean nothing).
class CabacDecoder {
 public:
  // A decoder over no data: every bin reads past the end (overran() is true). Call init() to bind the data.
  CabacDecoder() { init(nullptr, 0); }

  // Starts the engine at the first byte of data (9.3.2.5); see init().
  CabacDecoder(const uint8_t* data, size_t size) { init(data, size); }

  // Binds the decoder to [data, data + size) and initialises the engine at byte 0 (9.3.2.5). data may be null only
  // when size is 0. Raises InvalidValue when the first 9 bits give ivlOffset 510 or 511, which 9.3.2.5 forbids.
  void init(const uint8_t* data, size_t size);

  // Initialisation of the arithmetic decoding engine (9.3.2.5) at a byte offset of the bound data: after PCM
  // samples (the contexts are kept), or at the next substream / tile / WPP row entry point. Raises Truncated when
  // byte_offset > size, and InvalidValue for ivlOffset 510 or 511.
  void reinit_at(size_t byte_offset);

  // DecodeDecision (9.3.4.3.2) with the state transition (9.3.4.3.2.2) and RenormD (9.3.4.3.3).
  int decode_decision(ContextModel& model);

  // DecodeBypass (9.3.4.3.4).
  int decode_bypass();

  // n consecutive bypass bins (9.3.4.3.4), first bin in the most significant bit; n in 0..32, else InvalidValue.
  uint32_t decode_bypass_bits(int n);

  // DecodeTerminate (9.3.4.3.5); see the class comment for what a result of 1 implies. A terminate bin right after
  // one equal to 1 (no reinit_at() in between) raises InvalidValue: the engine has stopped.
  int decode_terminate();

  // Truncated Rice bin string of bypass bins (9.3.3.2): a unary prefix of at most cMax >> cRiceParam ones, then,
  // when the prefix is shorter than that, a cRiceParam-bit suffix. Every HEVC use with cRiceParam > 0 has cMax a
  // multiple of 1 << cRiceParam, which this requires (InvalidValue otherwise); cRiceParam must be 0..31. With
  // cRiceParam 0 this is the truncated unary code of cMax.
  uint32_t decode_tr_bypass(uint32_t c_max, int c_rice_param);

  // k-th order Exp-Golomb bin string of bypass bins (9.3.3.3), k in 0..31. A corrupt stream could make the unary
  // prefix arbitrarily long, so a prefix of kMaxEgkPrefix ones raises InvalidValue, as does a value above 2^32 - 1.
  uint32_t decode_egk_bypass(int k);

  // Fixed-length bin string of bypass bins (9.3.3.4 [9.3.3.5]): Ceil(Log2(cMax + 1)) bins, most significant first.
  // A value above cMax raises InvalidValue.
  uint32_t decode_fl_bypass(uint32_t c_max);

  // Longest unary EGk prefix accepted (ones before the terminating zero is read).
  static constexpr int kMaxEgkPrefix = 32;

  // Bits the spec's decoding process has read from the start of the bound data, i.e. the bit position of the next
  // bit it would read (9 bits at initialisation, one per renormalisation shift and per bypass bin).
  uint64_t bit_position() const { return 8 * static_cast<uint64_t>(next_) - static_cast<uint64_t>(bits_); }

  // The byte position where the data after a terminate bin equal to 1 starts: bit_position() rounded up to a byte.
  size_t bytes_consumed() const { return static_cast<size_t>((bit_position() + 7) / 8); }

  // True when the spec's process has read past the end of the data (the missing bits were taken as zeros).
  bool overran() const { return bit_position() > 8 * static_cast<uint64_t>(size_); }

  // How many bits past the end of the data the spec's process has read (0 unless overran()).
  uint64_t overrun_bits() const { return overran() ? bit_position() - 8 * static_cast<uint64_t>(size_) : 0; }

  // After decode_terminate() returned 1: true when the last bit read is 1, the bits after it up to the byte
  // boundary are 0, and no bit was read past the end (the stop/alignment pattern that ends a CABAC codeword).
  bool trailing_bits_ok() const;

  // ivlCurrRange and ivlOffset of the spec's decoding engine (traces and tests).
  uint32_t range() const { return range_; }
  uint32_t offset() const { return static_cast<uint32_t>(value_ >> bits_); }

  size_t size() const { return size_; }

 private:
  // The window is refilled when fewer look-ahead bits than this remain, which covers the longest renormalisation
  // (7 shifts) of any single bin.
  static constexpr int kMinLookahead = 8;

  // Tops the look-ahead up to 47..54 bits (value_ stays below 2^63 because ivlOffset < 2^9). Bytes past the end of
  // the data are taken as zero. Inline, like the decoding functions, and none of them passes the engine's address
  // to an out-of-line function: a copy of the engine in a local variable then stays in registers.
  void refill();

  // Starts the engine with next_ at byte_offset (9.3.2.5).
  void start(size_t byte_offset);

  [[noreturn]] void fail(ErrorKind kind, const char* message) const;

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t next_ = 0;     // index of the next byte to load into the window; may pass size_ (zero fill)
  uint64_t value_ = 0;  // (ivlOffset << bits_) | look-ahead bits
  int bits_ = 0;        // look-ahead bits held below ivlOffset
  uint32_t range_ = 510;  // ivlCurrRange: 256..510 between bins, 254..508 after a terminate bin equal to 1
  bool stopped_ = false;  // a terminate bin equal to 1 was decoded since the last (re)initialisation
};

namespace cabac_detail {

// Raises ParseError(kind, message) located at bit_position; takes no engine pointer (see refill()).
[[noreturn]] void fail_at(ErrorKind kind, const char* message, uint64_t bit_position);

// Number of RenormD iterations (9.3.4.3.3) that bring a sub-range 1..511 to 256 or above (0 from 256 on).
constexpr std::array<uint8_t, 512> make_renorm_shift() {
  std::array<uint8_t, 512> table{};
  for (int r = 1; r < 512; ++r) {
    int shift = 0;
    while ((r << shift) < 256) ++shift;
    table[static_cast<size_t>(r)] = static_cast<uint8_t>(shift);
  }
  return table;
}

inline constexpr std::array<uint8_t, 512> kRenormShift = make_renorm_shift();

}  // namespace cabac_detail

// DecodeDecision (9.3.4.3.2): qRangeIdx = (ivlCurrRange >> 6) & 3, ivlLpsRange = rangeTabLps[pStateIdx][qRangeIdx],
// ivlCurrRange -= ivlLpsRange; MPS when ivlOffset < ivlCurrRange, else LPS with ivlOffset -= ivlCurrRange and
// ivlCurrRange = ivlLpsRange. State transition (9.3.4.3.2.2) and RenormD (9.3.4.3.3) follow.
[[gnu::always_inline]] inline int CabacDecoder::decode_decision(ContextModel& model) {
  const uint32_t state = model.state & 63u;
  const uint32_t lps = cabac_tables::kRangeTabLps[state][(range_ >> 6) & 3];
  const uint32_t mps_range = range_ - lps;
  const uint64_t scaled = static_cast<uint64_t>(mps_range) << bits_;
  // Branch-free selection: the bin is close to random, so a branch on it would often be mispredicted.
  const uint32_t is_lps = value_ >= scaled ? 1u : 0u;
  value_ -= scaled & (uint64_t{0} - is_lps);
  const uint32_t range = is_lps ? lps : mps_range;
  const int bin = model.mps ^ static_cast<int>(is_lps);
  model.mps = static_cast<uint8_t>(model.mps ^ (is_lps & (state == 0 ? 1u : 0u)));
  model.state = is_lps ? cabac_tables::kTransIdxLps[state] : cabac_tables::kTransIdxMps[state];
  // RenormD (9.3.4.3.3): shift until ivlCurrRange >= 256, one look-ahead bit into ivlOffset per shift.
  const int shift = cabac_detail::kRenormShift[range];
  range_ = range << shift;
  bits_ -= shift;
  if (bits_ < kMinLookahead) refill();
  return bin;
}

// DecodeBypass (9.3.4.3.4): ivlOffset = (ivlOffset << 1) | read_bits(1); the bin is 1 when ivlOffset >= ivlCurrRange,
// which is then subtracted. Taking one look-ahead bit into ivlOffset is bits_ -= 1.
[[gnu::always_inline]] inline int CabacDecoder::decode_bypass() {
  bits_ -= 1;
  const uint64_t scaled = static_cast<uint64_t>(range_) << bits_;
  const uint32_t bin = value_ >= scaled ? 1u : 0u;
  value_ -= scaled & (uint64_t{0} - bin);
  if (bits_ < kMinLookahead) refill();
  return static_cast<int>(bin);
}

[[gnu::always_inline]] inline void CabacDecoder::refill() {
  if (bits_ > 46) return;
  if (next_ < size_ && size_ - next_ >= 8) {
    // Whole bytes that fit below 55 look-ahead bits: k is 1..7, so no shift reaches 64. The eight bytes are in
    // [data_, data_ + size_) (checked above).
    const int k = (54 - bits_) >> 3;
    uint64_t word = 0;
    for (int i = 0; i < 8; ++i) word = (word << 8) | data_[next_ + static_cast<size_t>(i)];
    value_ = (value_ << (8 * k)) | (word >> (64 - 8 * k));
    next_ += static_cast<size_t>(k);
    bits_ += 8 * k;
    return;
  }
  while (bits_ <= 46) {
    const uint64_t byte = next_ < size_ ? data_[next_] : 0;
    value_ = (value_ << 8) | byte;
    ++next_;
    bits_ += 8;
  }
}

// n DecodeBypass steps (9.3.4.3.4) are binary long division: each step appends one bit to ivlOffset and subtracts
// ivlCurrRange when it fits, so the n bins are the quotient of (ivlOffset << n | next n bits) / ivlCurrRange and the
// new ivlOffset is the remainder (the quotient is below 2^n because ivlOffset < ivlCurrRange).
[[gnu::always_inline]] inline uint32_t CabacDecoder::decode_bypass_bits(int n) {
  if (n < 0 || n > 32) cabac_detail::fail_at(ErrorKind::InvalidValue, "bypass bin count outside 0..32", bit_position());
  if (bits_ < n) refill();
  bits_ -= n;
  const uint64_t dividend = value_ >> bits_;  // below 2^(9 + n)
  const uint64_t quotient = dividend / range_;
  value_ -= (quotient * range_) << bits_;
  if (bits_ < kMinLookahead) refill();
  return static_cast<uint32_t>(quotient);
}

// DecodeTerminate (9.3.4.3.5): ivlCurrRange -= 2; the bin is 1 when ivlOffset >= ivlCurrRange, and then no
// renormalisation is done and decoding stops; otherwise the bin is 0 and RenormD (9.3.4.3.3) follows.
inline int CabacDecoder::decode_terminate() {
  if (stopped_) {
    cabac_detail::fail_at(ErrorKind::InvalidValue, "CABAC terminate bin after the engine stopped; reinit_at() first",
                          bit_position());
  }
  range_ -= 2;
  const uint64_t scaled = static_cast<uint64_t>(range_) << bits_;
  if (value_ >= scaled) {
    stopped_ = true;
    return 1;
  }
  if (range_ < 256) {
    range_ <<= 1;
    bits_ -= 1;
    if (bits_ < kMinLookahead) refill();
  }
  return 0;
}

}  // namespace arseg::hevc
