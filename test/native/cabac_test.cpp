// Unit tests of the HEVC CABAC layer (arseg_ros/codec/hevc/cabac.*): context initialisation (9.3.2.2), the arithmetic
// decoding engine (9.3.2.5, 9.3.4.3) against a bit-by-bit reference decoder and against the informative arithmetic
// encoder (9.3.5), termination and byte positions, out-of-data behaviour and the bypass binarisations.
//
//   cabac_test                 run the tests; exit status 0 when all pass
//   cabac_test --dump-tables   print the compiled constant tables as JSON (compared with cabac_tables.json by pytest)
//   cabac_test --bench         print decoding throughput
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cabac.hpp"

using arseg::hevc::CabacDecoder;
using arseg::hevc::ContextModel;
using arseg::hevc::ContextSet;
using arseg::hevc::ErrorKind;
using arseg::hevc::ParseError;
namespace ctx = arseg::hevc::ctx;
namespace tables = arseg::hevc::cabac_tables;

namespace {

int g_failures = 0;

void report_failure(const char* file, int line, const std::string& what) {
  ++g_failures;
  if (g_failures <= 50) std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
}

void check_equal(long long a, long long b, const char* expression, const char* file, int line) {
  if (a != b) {
    report_failure(file, line, std::string(expression) + " (" + std::to_string(a) + " vs " + std::to_string(b) + ")");
  }
}

#define CHECK(cond)                                         \
  do {                                                      \
    if (!(cond)) report_failure(__FILE__, __LINE__, #cond); \
  } while (0)

#define CHECK_EQ(a, b) \
  check_equal(static_cast<long long>(a), static_cast<long long>(b), #a " == " #b, __FILE__, __LINE__)

#define CHECK_THROWS(expr, expected_kind)                                                        \
  do {                                                                                           \
    bool check_thrown_ = false;                                                                  \
    try {                                                                                        \
      expr;                                                                                      \
    } catch (const ParseError& e) {                                                              \
      check_thrown_ = true;                                                                      \
      if (e.kind() != (expected_kind)) report_failure(__FILE__, __LINE__, "wrong kind: " #expr); \
    }                                                                                            \
    if (!check_thrown_) report_failure(__FILE__, __LINE__, "no ParseError from " #expr);         \
  } while (0)

// ---------------------------------------------------------------------------------------------------------------
// Bit writer and the informative arithmetic encoder (9.3.5): InitEncoder, EncodeDecision, RenormE, PutBit,
// EncodeBypass, EncodeTerminate and EncodeFlush, written bit by bit as the spec describes them.

class BitWriter {
 public:
  void put(int bit) {
    if (bits_ % 8 == 0) bytes_.push_back(0);
    if (bit) bytes_.back() = static_cast<uint8_t>(bytes_.back() | (0x80u >> (bits_ % 8)));
    ++bits_;
  }
  void put_bits(uint64_t value, int n) {
    for (int i = n - 1; i >= 0; --i) put(static_cast<int>((value >> i) & 1));
  }
  void align_zero() {
    while (bits_ % 8 != 0) put(0);
  }
  void put_byte(uint8_t b) { put_bits(b, 8); }
  uint64_t bits() const { return bits_; }
  size_t byte_size() const { return bytes_.size(); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
  uint64_t bits_ = 0;
};

class Encoder {
 public:
  explicit Encoder(BitWriter& out) : out_(out) { start(); }

  // InitEncoder (9.3.5): ivlLow = 0, ivlCurrRange = 510, firstBitFlag = 1, bitsOutstanding = 0.
  void start() {
    low_ = 0;
    range_ = 510;
    first_bit_ = true;
    outstanding_ = 0;
  }

  // EncodeDecision (9.3.5).
  void decision(ContextModel& model, int bin) {
    const uint32_t lps = tables::kRangeTabLps[model.state][(range_ >> 6) & 3];
    range_ -= lps;
    if (bin != model.mps) {
      low_ += range_;
      range_ = lps;
      if (model.state == 0) model.mps = static_cast<uint8_t>(1 - model.mps);
      model.state = tables::kTransIdxLps[model.state];
    } else {
      model.state = tables::kTransIdxMps[model.state];
    }
    renorm();
  }

  // EncodeBypass (9.3.5).
  void bypass(int bin) {
    low_ <<= 1;
    if (bin) low_ += range_;
    if (low_ >= 1024) {
      put_bit(1);
      low_ -= 1024;
    } else if (low_ < 512) {
      put_bit(0);
    } else {
      low_ -= 512;
      ++outstanding_;
    }
  }

  void bypass_bits(uint64_t value, int n) {
    for (int i = n - 1; i >= 0; --i) bypass(static_cast<int>((value >> i) & 1));
  }

  // EncodeTerminate (9.3.5); a bin equal to 1 ends with EncodeFlush.
  void terminate(int bin) {
    range_ -= 2;
    if (bin) {
      low_ += range_;
      flush();
    } else {
      renorm();
    }
  }

 private:
  // RenormE (9.3.5).
  void renorm() {
    while (range_ < 256) {
      if (low_ < 256) {
        put_bit(0);
      } else if (low_ >= 512) {
        low_ -= 512;
        put_bit(1);
      } else {
        low_ -= 256;
        ++outstanding_;
      }
      range_ <<= 1;
      low_ <<= 1;
    }
  }

  // PutBit (9.3.5).
  void put_bit(int bit) {
    if (first_bit_) {
      first_bit_ = false;
    } else {
      out_.put(bit);
    }
    while (outstanding_ > 0) {
      out_.put(1 - bit);
      --outstanding_;
    }
  }

  // EncodeFlush (9.3.5): the last bit written is 1 (the stop / alignment bit).
  void flush() {
    range_ = 2;
    renorm();
    put_bit(static_cast<int>((low_ >> 9) & 1));
    out_.put_bits(((low_ >> 7) & 3) | 1, 2);
  }

  BitWriter& out_;
  uint32_t low_ = 0;
  uint32_t range_ = 510;
  bool first_bit_ = true;
  int outstanding_ = 0;
};

// Encoder side of the binarisations: TR (9.3.3.2), EGk (9.3.3.3), FL (9.3.3.4).
void encode_tr(Encoder& enc, uint32_t value, uint32_t c_max, int rice) {
  const uint32_t prefix = value >> rice;
  const uint32_t prefix_max = c_max >> rice;
  if (prefix < prefix_max) {
    for (uint32_t i = 0; i < prefix; ++i) enc.bypass(1);
    enc.bypass(0);
  } else {
    for (uint32_t i = 0; i < prefix_max; ++i) enc.bypass(1);
  }
  if (c_max > value && rice > 0) enc.bypass_bits(value - (prefix << rice), rice);
}

void encode_egk(Encoder& enc, uint64_t value, int k) {
  uint64_t abs_v = value;
  for (;;) {
    if (abs_v >= (uint64_t{1} << k)) {
      enc.bypass(1);
      abs_v -= uint64_t{1} << k;
      ++k;
    } else {
      enc.bypass(0);
      enc.bypass_bits(abs_v, k);
      return;
    }
  }
}

int fl_length(uint32_t c_max) {
  int n = 0;
  while (n < 32 && (c_max >> n) != 0) ++n;
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// Reference decoder: the spec's process literally, one read_bits(1) at a time, zeros past the end of the data.

class ReferenceDecoder {
 public:
  ReferenceDecoder(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  // 9.3.2.5. Returns false where the spec forbids the result (ivlOffset 510 or 511).
  bool init_at(size_t byte) {
    pos_ = 8 * static_cast<uint64_t>(byte);
    range_ = 510;
    offset_ = 0;
    for (int i = 0; i < 9; ++i) offset_ = (offset_ << 1) | read_bit();
    return offset_ < 510;
  }

  // 9.3.4.3.2.
  int decision(ContextModel& model) {
    const uint32_t lps = tables::kRangeTabLps[model.state][(range_ >> 6) & 3];
    range_ -= lps;
    int bin;
    if (offset_ >= range_) {
      bin = 1 - model.mps;
      offset_ -= range_;
      range_ = lps;
      if (model.state == 0) model.mps = static_cast<uint8_t>(1 - model.mps);
      model.state = tables::kTransIdxLps[model.state];
    } else {
      bin = model.mps;
      model.state = tables::kTransIdxMps[model.state];
    }
    renorm();
    return bin;
  }

  // 9.3.4.3.4.
  int bypass() {
    offset_ = (offset_ << 1) | read_bit();
    if (offset_ >= range_) {
      offset_ -= range_;
      return 1;
    }
    return 0;
  }

  // 9.3.4.3.5.
  int terminate() {
    range_ -= 2;
    if (offset_ >= range_) return 1;
    renorm();
    return 0;
  }

  uint32_t range() const { return range_; }
  uint32_t offset() const { return offset_; }
  uint64_t position() const { return pos_; }

 private:
  uint32_t read_bit() {
    const uint32_t bit = pos_ < 8 * static_cast<uint64_t>(size_) ? (data_[pos_ / 8] >> (7 - pos_ % 8)) & 1u : 0u;
    ++pos_;
    return bit;
  }

  // 9.3.4.3.3.
  void renorm() {
    while (range_ < 256) {
      range_ <<= 1;
      offset_ = (offset_ << 1) | read_bit();
    }
  }

  const uint8_t* data_;
  size_t size_;
  uint64_t pos_ = 0;
  uint32_t range_ = 510;
  uint32_t offset_ = 0;
};

bool same_state(const CabacDecoder& dec, const ReferenceDecoder& ref) {
  return dec.range() == ref.range() && dec.offset() == ref.offset() && dec.bit_position() == ref.position();
}

// ---------------------------------------------------------------------------------------------------------------
// Random bin scripts: the same script drives the encoder and the decoders.

enum class OpKind { Decision, Bypass, BypassBits, Terminate0, Tr, Egk, Fl, PcmBreak, SubstreamBreak };

struct Op {
  OpKind kind = OpKind::Bypass;
  int context = 0;      // Decision: index in the ContextSet
  uint64_t value = 0;   // the bin or the value
  int n = 0;            // BypassBits: bin count; Tr: cRiceParam; Egk: k
  uint32_t c_max = 0;   // Tr, Fl
  int pcm_bytes = 0;    // PcmBreak: raw bytes after the alignment
};

std::vector<Op> random_script(std::mt19937_64& rng, int length, bool with_breaks) {
  std::vector<double> p_one(ctx::NUM_CONTEXTS);
  for (double& p : p_one) {
    const int pick = static_cast<int>(rng() % 4);
    p = pick == 0 ? 0.02 : pick == 1 ? 0.98 : std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }
  std::vector<Op> ops;
  ops.reserve(static_cast<size_t>(length));
  for (int i = 0; i < length; ++i) {
    Op op;
    const int r = static_cast<int>(rng() % 100);
    if (r < 60) {
      op.kind = OpKind::Decision;
      op.context = static_cast<int>(rng() % ctx::NUM_CONTEXTS);
      op.value = std::uniform_real_distribution<double>(0.0, 1.0)(rng) < p_one[static_cast<size_t>(op.context)];
    } else if (r < 72) {
      op.kind = OpKind::Bypass;
      op.value = rng() & 1;
    } else if (r < 78) {
      op.kind = OpKind::BypassBits;
      op.n = static_cast<int>(rng() % 33);
      op.value = op.n == 0 ? 0 : (rng() & (~uint64_t{0} >> (64 - op.n)));
    } else if (r < 84) {
      op.kind = OpKind::Terminate0;
    } else if (r < 90) {
      op.kind = OpKind::Tr;
      if (rng() % 2) {
        op.n = 0;
        const uint32_t c_maxes[] = {1, 2, 4, 5, 14, 31};
        op.c_max = c_maxes[rng() % 6];
      } else {
        op.n = static_cast<int>(rng() % 5);
        op.c_max = 4u << op.n;
      }
      op.value = rng() % (op.c_max + 1);
    } else if (r < 95) {
      op.kind = OpKind::Egk;
      op.n = static_cast<int>(rng() % 6);
      const int magnitude = static_cast<int>(rng() % 3);
      op.value = magnitude == 0 ? rng() % 8 : magnitude == 1 ? rng() % 70000 : rng() % 0x80000000u;
    } else if (r < 98 || !with_breaks) {
      op.kind = OpKind::Fl;
      const uint32_t c_maxes[] = {1, 3, 31, 255, 0xFFFFFFFFu};
      op.c_max = c_maxes[rng() % 5];
      op.value = op.c_max == 0xFFFFFFFFu ? (rng() & 0xFFFFFFFFu) : rng() % (uint64_t{op.c_max} + 1);
    } else if (r < 99) {
      op.kind = OpKind::PcmBreak;
      op.pcm_bytes = static_cast<int>(rng() % 5);
    } else {
      op.kind = OpKind::SubstreamBreak;
    }
    ops.push_back(op);
  }
  return ops;
}

struct Encoded {
  std::vector<uint8_t> bytes;
  std::vector<size_t> break_ends;    // byte position after each terminate-1 + alignment (PCM start / entry point)
  std::vector<size_t> restarts;      // byte position where the engine restarts after each break
  size_t end_of_codeword = 0;        // byte position after the final end_of_slice_segment_flag + alignment
};

Encoded encode_script(const std::vector<Op>& ops, int init_type, int qp, std::mt19937_64& rng, int zero_words) {
  BitWriter out;
  Encoder enc(out);
  ContextSet contexts;
  arseg::hevc::init_contexts(contexts, init_type, qp);
  Encoded result;
  for (const Op& op : ops) {
    switch (op.kind) {
      case OpKind::Decision: enc.decision(contexts[static_cast<size_t>(op.context)], static_cast<int>(op.value)); break;
      case OpKind::Bypass: enc.bypass(static_cast<int>(op.value)); break;
      case OpKind::BypassBits: enc.bypass_bits(op.value, op.n); break;
      case OpKind::Terminate0: enc.terminate(0); break;
      case OpKind::Tr: encode_tr(enc, static_cast<uint32_t>(op.value), op.c_max, op.n); break;
      case OpKind::Egk: encode_egk(enc, op.value, op.n); break;
      case OpKind::Fl: enc.bypass_bits(op.value, fl_length(op.c_max)); break;
      case OpKind::PcmBreak:
      case OpKind::SubstreamBreak:
        // pcm_flag / end_of_subset_one_bit: terminate bin 1 and EncodeFlush, then pcm_alignment_zero_bits or the
        // zero bits of byte_alignment(), then (PCM) raw sample bytes; the engine restarts at the next byte.
        enc.terminate(1);
        out.align_zero();
        result.break_ends.push_back(out.byte_size());
        for (int i = 0; i < op.pcm_bytes; ++i) out.put_byte(static_cast<uint8_t>(rng()));
        result.restarts.push_back(out.byte_size());
        enc.start();
        break;
    }
  }
  // end_of_slice_segment_flag = 1, then rbsp_slice_segment_trailing_bits: the stop bit comes from the flush.
  enc.terminate(1);
  out.align_zero();
  result.end_of_codeword = out.byte_size();
  for (int i = 0; i < zero_words; ++i) out.put_bits(0, 16);  // cabac_zero_words
  result.bytes = out.bytes();
  return result;
}

// Decodes one script op with the engine under test, checking the result. Returns false on a mismatch.
bool decode_op(CabacDecoder& dec, ContextSet& contexts, const Op& op) {
  switch (op.kind) {
    case OpKind::Decision:
      return dec.decode_decision(contexts[static_cast<size_t>(op.context)]) == static_cast<int>(op.value);
    case OpKind::Bypass: return dec.decode_bypass() == static_cast<int>(op.value);
    case OpKind::BypassBits: return dec.decode_bypass_bits(op.n) == op.value;
    case OpKind::Terminate0: return dec.decode_terminate() == 0;
    case OpKind::Tr: return dec.decode_tr_bypass(op.c_max, op.n) == op.value;
    case OpKind::Egk: return dec.decode_egk_bypass(op.n) == op.value;
    case OpKind::Fl: return dec.decode_fl_bypass(op.c_max) == op.value;
    case OpKind::PcmBreak:
    case OpKind::SubstreamBreak: return dec.decode_terminate() == 1;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Tests.

void test_tables_sanity() {
  for (int p = 0; p < 62; ++p) CHECK_EQ(tables::kTransIdxMps[p], p + 1);
  CHECK_EQ(tables::kTransIdxMps[62], 62);
  CHECK_EQ(tables::kTransIdxMps[63], 63);
  for (int p = 0; p < 63; ++p) {
    CHECK(tables::kTransIdxLps[p] <= p);
    for (int q = 0; q < 4; ++q) CHECK(tables::kRangeTabLps[p][q] >= 6);
  }
  CHECK_EQ(tables::kRangeTabLps[0][0], 128);
  CHECK_EQ(tables::kRangeTabLps[63][3], 2);
  // The element blocks tile the context set without gaps, in order.
  int next = 0;
  for (const auto& e : tables::kElements) {
    CHECK_EQ(e.first, next);
    CHECK(e.main_count <= e.size);
    for (int t = 0; t < tables::kNumInitTypes; ++t) {
      CHECK(e.count[t] <= e.size);
      for (int i = e.count[t]; i < e.size; ++i) CHECK_EQ(tables::kInitValues[t][e.first + i], tables::kFillerInitValue);
    }
    next += e.size;
  }
  CHECK_EQ(next, ctx::NUM_CONTEXTS);
  // Contexts a Main/Main10 parser uses (README: 134 for initType 0, 154 for initTypes 1 and 2).
  for (int t = 0; t < tables::kNumInitTypes; ++t) {
    int main_contexts = 0;
    for (const auto& e : tables::kElements) main_contexts += e.main_count < e.count[t] ? e.main_count : e.count[t];
    CHECK_EQ(main_contexts, t == 0 ? 134 : 154);
  }
  CHECK_EQ(ctx::TRANSFORM_SKIP_FLAG_CHROMA, ctx::TRANSFORM_SKIP_FLAG + 1);
  CHECK_EQ(ctx::CBF_CHROMA + 5, ctx::ABS_MVD_GREATER0);
  CHECK_EQ(ctx::SIG_COEFF_FLAG + 44, ctx::COEFF_ABS_LEVEL_GREATER1_FLAG);
}

void test_init_type() {
  CHECK_EQ(arseg::hevc::init_type(2, false), 0);
  CHECK_EQ(arseg::hevc::init_type(2, true), 0);
  CHECK_EQ(arseg::hevc::init_type(1, false), 1);
  CHECK_EQ(arseg::hevc::init_type(1, true), 2);
  CHECK_EQ(arseg::hevc::init_type(0, false), 2);
  CHECK_EQ(arseg::hevc::init_type(0, true), 1);
  CHECK_THROWS(arseg::hevc::init_type(3, false), ErrorKind::InvalidValue);
  CHECK_THROWS(arseg::hevc::init_type(-1, true), ErrorKind::InvalidValue);
}

void check_context(uint8_t init_value, int qp, int mps, int state) {
  const ContextModel m = arseg::hevc::init_context(init_value, qp);
  if (m.mps != mps || m.state != state) {
    report_failure(__FILE__, __LINE__,
                   "init_context(" + std::to_string(init_value) + ", " + std::to_string(qp) + ") = mps " +
                       std::to_string(m.mps) + " state " + std::to_string(m.state) + ", expected mps " +
                       std::to_string(mps) + " state " + std::to_string(state));
  }
}

void test_context_init_known_values() {
  // Worked by hand from 9.3.2.2 (m = slopeIdx*5 - 45, n = (offsetIdx << 3) - 16, pre = Clip3(1, 126, (m*qp >> 4) + n)).
  check_context(154, 0, 1, 0);    // slope 9, offset 10: m 0, n 64 -> pre 64 at every QP
  check_context(154, 37, 1, 0);
  check_context(153, 30, 0, 7);   // m 0, n 56 -> pre 56 -> valMps 0, pStateIdx 63 - 56
  check_context(139, 26, 0, 0);   // slope 8, offset 11: m -5, n 72; -130 >> 4 = -9 (floor) -> pre 63
  check_context(139, 51, 0, 7);   // -255 >> 4 = -16 -> pre 56
  check_context(139, 0, 1, 8);    // pre 72
  check_context(63, 22, 0, 1);    // slope 3, offset 15: m -30, n 104; -660 >> 4 = -42 (not -41) -> pre 62
  check_context(200, 30, 1, 12);  // slope 12, offset 8: m 15, n 48; 450 >> 4 = 28 -> pre 76
  check_context(0, 51, 0, 62);    // m -45, n -16; -2295 >> 4 = -144 -> clipped to pre 1
  check_context(0, 0, 0, 62);     // pre -16 clipped to 1
  check_context(255, 51, 1, 62);  // m 30, n 104; 1530 >> 4 = 95 -> 199 clipped to 126
  // SliceQpY is clipped to 0..51 (negative for high bit depths).
  for (int v = 0; v < 256; ++v) {
    const ContextModel low = arseg::hevc::init_context(static_cast<uint8_t>(v), -12);
    const ContextModel zero = arseg::hevc::init_context(static_cast<uint8_t>(v), 0);
    const ContextModel high = arseg::hevc::init_context(static_cast<uint8_t>(v), 70);
    const ContextModel top = arseg::hevc::init_context(static_cast<uint8_t>(v), 51);
    CHECK(low.mps == zero.mps && low.state == zero.state);
    CHECK(high.mps == top.mps && high.state == top.state);
    for (int qp = -12; qp <= 51; ++qp) {
      const ContextModel m = arseg::hevc::init_context(static_cast<uint8_t>(v), qp);
      CHECK(m.state <= 62 && m.mps <= 1);
    }
  }
  // init_contexts applies the table of the initType.
  ContextSet set;
  arseg::hevc::init_contexts(set, 0, 26);
  CHECK_EQ(tables::kInitValues[0][ctx::SPLIT_CU_FLAG], 139);
  CHECK(set[ctx::SPLIT_CU_FLAG].mps == 0 && set[ctx::SPLIT_CU_FLAG].state == 0);
  CHECK_EQ(tables::kInitValues[0][ctx::SAO_MERGE_FLAG], 153);
  CHECK(set[ctx::SAO_MERGE_FLAG].mps == 0 && set[ctx::SAO_MERGE_FLAG].state == 7);
  for (int t = 0; t < 3; ++t) {
    for (int qp : {-6, 0, 22, 37, 51}) {
      arseg::hevc::init_contexts(set, t, qp);
      for (size_t i = 0; i < set.size(); ++i) {
        const ContextModel m = arseg::hevc::init_context(tables::kInitValues[t][i], qp);
        CHECK(set[i].mps == m.mps && set[i].state == m.state);
      }
    }
  }
  CHECK_THROWS(arseg::hevc::init_contexts(set, 3, 26), ErrorKind::InvalidValue);
  CHECK_THROWS(arseg::hevc::init_contexts(set, -1, 26), ErrorKind::InvalidValue);
  // The set is a value: a stored copy (WPP storage, dependent slice segments) is independent of the working set.
  ContextSet stored = set;
  const uint8_t before = stored[ctx::SIG_COEFF_FLAG].state;
  set[ctx::SIG_COEFF_FLAG].state = static_cast<uint8_t>(before == 40 ? 41 : 40);
  CHECK_EQ(stored[ctx::SIG_COEFF_FLAG].state, before);
  stored = set;
  CHECK_EQ(stored[ctx::SIG_COEFF_FLAG].state, set[ctx::SIG_COEFF_FLAG].state);
}

void test_terminate_by_hand() {
  // Init then terminate 1: the encoder writes 1111111 (outstanding bits) and 01 (flush), i.e. 0xFE 0x80 after
  // alignment; the decoder reads exactly these 9 bits, the last one being the stop bit.
  BitWriter out;
  Encoder enc(out);
  enc.terminate(1);
  out.align_zero();
  CHECK_EQ(out.byte_size(), 2);
  CHECK_EQ(out.bytes()[0], 0xFE);
  CHECK_EQ(out.bytes()[1], 0x80);

  const uint8_t data[] = {0xFE, 0x80};
  CabacDecoder dec(data, sizeof data);
  CHECK_EQ(dec.offset(), 509);
  CHECK_EQ(dec.range(), 510);
  CHECK_EQ(dec.decode_terminate(), 1);
  CHECK_EQ(dec.bit_position(), 9);
  CHECK_EQ(dec.bytes_consumed(), 2);
  CHECK(dec.trailing_bits_ok());
  CHECK(!dec.overran());

  // A one after the stop bit breaks the alignment pattern; a missing byte is an overrun.
  const uint8_t bad[] = {0xFE, 0x81};
  CabacDecoder dec_bad(bad, sizeof bad);
  CHECK_EQ(dec_bad.decode_terminate(), 1);
  CHECK(!dec_bad.trailing_bits_ok());
  CabacDecoder dec_short(data, 1);
  CHECK_EQ(dec_short.decode_terminate(), 1);
  CHECK(dec_short.overran());
  CHECK_EQ(dec_short.overrun_bits(), 1);
  CHECK(!dec_short.trailing_bits_ok());

  // A terminate bin 0 renormalises: 510 - 2 = 508 needs no shift; it takes 128 more bins of 0 to go below 256.
  const uint8_t zeros[] = {0x00, 0x00, 0x00, 0x00};
  CabacDecoder dec_zero(zeros, sizeof zeros);
  CHECK_EQ(dec_zero.decode_terminate(), 0);
  CHECK_EQ(dec_zero.range(), 508);
  CHECK_EQ(dec_zero.bit_position(), 9);
}

void test_init_errors_and_bounds() {
  const uint8_t offset510[] = {0xFF, 0x00};
  const uint8_t offset511[] = {0xFF, 0x80};
  CHECK_THROWS(CabacDecoder(offset510, 2), ErrorKind::InvalidValue);
  CHECK_THROWS(CabacDecoder(offset511, 2), ErrorKind::InvalidValue);
  const uint8_t offset509[] = {0xFE, 0x80};
  CabacDecoder dec(offset509, 2);
  CHECK_THROWS(dec.reinit_at(3), ErrorKind::Truncated);
  dec.reinit_at(2);  // the end: all zero bits, an overrun of 9 bits
  CHECK(dec.overran());
  CHECK_EQ(dec.overrun_bits(), 9);
  CHECK_EQ(dec.offset(), 0);
  CHECK_THROWS(dec.decode_bypass_bits(33), ErrorKind::InvalidValue);
  CHECK_THROWS(dec.decode_bypass_bits(-1), ErrorKind::InvalidValue);
  CHECK_THROWS(dec.decode_tr_bypass(5, 1), ErrorKind::InvalidValue);
  CHECK_THROWS(dec.decode_tr_bypass(4, 32), ErrorKind::InvalidValue);
  CHECK_THROWS(dec.decode_egk_bypass(32), ErrorKind::InvalidValue);
  CHECK_THROWS(CabacDecoder(nullptr, 4), ErrorKind::InvalidValue);
  // A stopped engine refuses a second terminate bin; other bins stay memory-safe (results are meaningless).
  CabacDecoder stopped(offset509, 2);
  CHECK_EQ(stopped.decode_terminate(), 1);
  CHECK_THROWS(stopped.decode_terminate(), ErrorKind::InvalidValue);
  ContextModel any;
  for (int i = 0; i < 100; ++i) {
    stopped.decode_decision(any);
    stopped.decode_bypass_bits(7);
  }
  CHECK(stopped.range() >= 256 && stopped.range() <= 510);
  CabacDecoder unbound;
  CHECK(unbound.overran());
  CHECK_EQ(unbound.decode_bypass_bits(32), 0);
  CabacDecoder empty(nullptr, 0);
  CHECK(empty.overran());
  ContextModel m;
  for (int i = 0; i < 1000; ++i) empty.decode_decision(m);
  CHECK(empty.overran());
  CHECK(!empty.trailing_bits_ok());
}

void test_egk_prefix_cap() {
  // 40 bypass ones: the EGk prefix reaches 32 ones, which is rejected.
  {
    BitWriter out;
    Encoder enc(out);
    for (int i = 0; i < 40; ++i) enc.bypass(1);
    enc.terminate(1);
    out.align_zero();
    CabacDecoder dec(out.bytes().data(), out.byte_size());
    CHECK_THROWS(dec.decode_egk_bypass(0), ErrorKind::InvalidValue);
  }
  // 31 ones then 0 is accepted for k = 0 (the value fits 32 bits) and rejected for k = 1 when it does not.
  {
    BitWriter out;
    Encoder enc(out);
    encode_egk(enc, 0xFFFFFFFEull, 0);
    encode_egk(enc, 0x1FFFFFFFDull, 1);
    enc.terminate(1);
    out.align_zero();
    CabacDecoder dec(out.bytes().data(), out.byte_size());
    CHECK_EQ(dec.decode_egk_bypass(0), 0xFFFFFFFEull);
    CHECK_THROWS(dec.decode_egk_bypass(1), ErrorKind::InvalidValue);
  }
  // An FL value above cMax is rejected.
  {
    BitWriter out;
    Encoder enc(out);
    enc.bypass_bits(6, 3);
    enc.terminate(1);
    out.align_zero();
    CabacDecoder dec(out.bytes().data(), out.byte_size());
    CHECK_THROWS(dec.decode_fl_bypass(5), ErrorKind::InvalidValue);
  }
}

// Encoder -> decoder round trips, with the reference decoder in lock step, across initTypes and QPs.
void test_round_trip() {
  std::mt19937_64 rng(0x9E3779B97F4A7C15ull);
  int scripts = 0;
  for (int init_type = 0; init_type < 3; ++init_type) {
    for (int qp : {-12, 0, 17, 26, 37, 51}) {
      for (int rep = 0; rep < 12; ++rep) {
        const int length = rep < 2 ? static_cast<int>(rng() % 8) : 200 + static_cast<int>(rng() % 3000);
        const std::vector<Op> ops = random_script(rng, length, true);
        const int zero_words = static_cast<int>(rng() % 3);
        const Encoded enc = encode_script(ops, init_type, qp, rng, zero_words);
        ++scripts;

        // Exactly sized heap copy so that any read past the end is caught by AddressSanitizer.
        const std::vector<uint8_t> data(enc.bytes.begin(), enc.bytes.end());
        CabacDecoder dec(data.data(), data.size());
        ReferenceDecoder ref(data.data(), data.size());
        CHECK(ref.init_at(0));
        ContextSet contexts;
        ContextSet ref_contexts;
        arseg::hevc::init_contexts(contexts, init_type, qp);
        arseg::hevc::init_contexts(ref_contexts, init_type, qp);
        size_t break_index = 0;
        bool ok = same_state(dec, ref);
        for (size_t i = 0; i < ops.size() && ok; ++i) {
          const Op& op = ops[i];
          if (!decode_op(dec, contexts, op)) {
            report_failure(__FILE__, __LINE__, "round trip: wrong value at op " + std::to_string(i));
            ok = false;
            break;
          }
          // The reference decodes primitive ops only; for binarised ops it decodes the same bins one by one.
          switch (op.kind) {
            case OpKind::Decision: ref.decision(ref_contexts[static_cast<size_t>(op.context)]); break;
            case OpKind::Bypass: ref.bypass(); break;
            case OpKind::BypassBits:
              for (int b = 0; b < op.n; ++b) ref.bypass();
              break;
            case OpKind::Terminate0: ref.terminate(); break;
            case OpKind::Tr: {
              const uint32_t prefix_max = op.c_max >> op.n;
              uint32_t prefix = 0;
              while (prefix < prefix_max && ref.bypass() == 1) ++prefix;
              if (prefix < prefix_max) {
                for (int b = 0; b < op.n; ++b) ref.bypass();
              }
              break;
            }
            case OpKind::Egk: {
              int k = op.n;
              while (ref.bypass() == 1) ++k;
              for (int b = 0; b < k; ++b) ref.bypass();
              break;
            }
            case OpKind::Fl:
              for (int b = 0; b < fl_length(op.c_max); ++b) ref.bypass();
              break;
            case OpKind::PcmBreak:
            case OpKind::SubstreamBreak: ref.terminate(); break;
          }
          ok = same_state(dec, ref);
          if (!ok) report_failure(__FILE__, __LINE__, "round trip: state differs from the reference at op " +
                                                          std::to_string(i));
          if (op.kind == OpKind::PcmBreak || op.kind == OpKind::SubstreamBreak) {
            CHECK_EQ(dec.bytes_consumed(), enc.break_ends[break_index]);
            CHECK(dec.trailing_bits_ok());
            CHECK(!dec.overran());
            dec.reinit_at(enc.restarts[break_index]);
            CHECK(ref.init_at(enc.restarts[break_index]));
            ++break_index;
          }
        }
        if (!ok) continue;
        CHECK_EQ(dec.decode_terminate(), 1);
        CHECK_EQ(ref.terminate(), 1);
        CHECK(same_state(dec, ref));
        CHECK_EQ(dec.bytes_consumed(), enc.end_of_codeword);
        CHECK_EQ(enc.end_of_codeword + 2 * static_cast<size_t>(zero_words), data.size());
        CHECK(dec.trailing_bits_ok());
        CHECK(!dec.overran());
        CHECK_EQ(break_index, enc.break_ends.size());
      }
    }
  }
  CHECK_EQ(scripts, 3 * 6 * 12);
}

// Arbitrary bytes: the engine must agree with the reference bit for bit, including past the end of the data.
void test_random_data_against_reference() {
  std::mt19937_64 rng(12345);
  for (int rep = 0; rep < 3000; ++rep) {
    std::vector<uint8_t> data(rng() % 48);
    for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
    ReferenceDecoder ref(data.data(), data.size());
    const bool valid = ref.init_at(0);
    if (!valid) {
      CHECK_THROWS(CabacDecoder(data.data(), data.size()), ErrorKind::InvalidValue);
      continue;
    }
    CabacDecoder dec(data.data(), data.size());
    ContextSet contexts;
    arseg::hevc::init_contexts(contexts, static_cast<int>(rng() % 3), static_cast<int>(rng() % 52));
    ContextSet ref_contexts = contexts;
    bool ok = same_state(dec, ref);
    for (int i = 0; i < 400 && ok; ++i) {
      const int r = static_cast<int>(rng() % 10);
      if (r < 6) {
        const size_t c = rng() % ctx::NUM_CONTEXTS;
        ok = dec.decode_decision(contexts[c]) == ref.decision(ref_contexts[c]);
        ok = ok && contexts[c].state == ref_contexts[c].state && contexts[c].mps == ref_contexts[c].mps;
      } else if (r < 8) {
        ok = dec.decode_bypass() == ref.bypass();
      } else if (r < 9) {
        const int n = static_cast<int>(rng() % 33);
        uint32_t expected = 0;
        for (int b = 0; b < n; ++b) expected = (expected << 1) | static_cast<uint32_t>(ref.bypass());
        ok = dec.decode_bypass_bits(n) == expected;
      } else {
        const int bin = ref.terminate();
        ok = dec.decode_terminate() == bin;
        if (ok && bin == 1) {
          // A restart somewhere inside the data (or at its end).
          const size_t at = data.empty() ? 0 : rng() % (data.size() + 1);
          if (ref.init_at(at)) {
            dec.reinit_at(at);
          } else {
            CHECK_THROWS(dec.reinit_at(at), ErrorKind::InvalidValue);
            break;
          }
        }
      }
      ok = ok && same_state(dec, ref);
      ok = ok && dec.overran() == (ref.position() > 8 * data.size());
    }
    if (!ok) report_failure(__FILE__, __LINE__, "random data: engine differs from the reference, rep " +
                                                    std::to_string(rep));
  }
}

// Truncated data: no read outside the data, overran() exactly when the codeword was cut.
void test_truncation() {
  std::mt19937_64 rng(777);
  for (int rep = 0; rep < 40; ++rep) {
    const std::vector<Op> ops = random_script(rng, 300, false);
    const int init_type = static_cast<int>(rng() % 3);
    const Encoded enc = encode_script(ops, init_type, 30, rng, 0);
    for (size_t cut = 0; cut <= enc.bytes.size(); ++cut) {
      const std::vector<uint8_t> data(enc.bytes.begin(), enc.bytes.begin() + static_cast<std::ptrdiff_t>(cut));
      CabacDecoder dec(data.data(), data.size());
      ContextSet contexts;
      arseg::hevc::init_contexts(contexts, init_type, 30);
      bool complete = true;
      try {
        for (const Op& op : ops) decode_op(dec, contexts, op);
        complete = dec.decode_terminate() == 1;
      } catch (const ParseError& e) {
        // Zero bits past the end may form an invalid FL/EGk value; that is a typed error, not a crash.
        complete = false;
        CHECK(e.kind() == ErrorKind::InvalidValue);
      }
      if (cut < enc.end_of_codeword) {
        CHECK(dec.overran() || !complete);
      } else {
        CHECK(complete && !dec.overran());
        CHECK_EQ(dec.bytes_consumed(), enc.end_of_codeword);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// --dump-tables and --bench.

void print_list(const uint8_t* values, int n) {
  std::printf("[");
  for (int i = 0; i < n; ++i) std::printf(i ? ", %d" : "%d", values[i]);
  std::printf("]");
}

void dump_tables() {
  std::printf("{\n  \"num_contexts\": %d,\n  \"range_tab_lps\": [", ctx::NUM_CONTEXTS);
  for (int p = 0; p < 64; ++p) {
    std::printf(p ? ", " : "");
    print_list(tables::kRangeTabLps[p], 4);
  }
  std::printf("],\n  \"trans_idx_lps\": ");
  print_list(tables::kTransIdxLps, 64);
  std::printf(",\n  \"trans_idx_mps\": ");
  print_list(tables::kTransIdxMps, 64);
  std::printf(",\n  \"ctx_idx_map_sig_coeff_4x4\": ");
  print_list(tables::kCtxIdxMapSigCoeff4x4, tables::kCtxIdxMapSigCoeff4x4Size);
  std::printf(",\n  \"contexts\": {\n");
  for (int e = 0; e < tables::kNumElements; ++e) {
    const auto& info = tables::kElements[e];
    std::printf("    \"%s\": {\"spec_table\": \"%s\", \"first\": %d, \"size\": %d, \"main_count\": %d, ", info.name,
                info.spec_table, info.first, info.size, info.main_count);
    std::printf("\"init_values\": {");
    for (int t = 0; t < tables::kNumInitTypes; ++t) {
      std::printf(t ? ", \"%d\": " : "\"%d\": ", t);
      print_list(&tables::kInitValues[t][info.first], info.count[t]);
    }
    std::printf("}}%s\n", e + 1 < tables::kNumElements ? "," : "");
  }
  std::printf("  }\n}\n");
}

// Decodes num_bins context-coded bins over 32 contexts whose probability of a 1 is drawn from [p_lo, p_hi].
void bench_decisions(const char* label, double p_lo, double p_hi) {
  std::mt19937_64 rng(42);
  const size_t num_bins = 20'000'000;
  std::vector<double> p_one(32);
  for (double& p : p_one) p = std::uniform_real_distribution<double>(p_lo, p_hi)(rng);
  std::vector<uint8_t> ctx_of(num_bins);
  std::vector<uint8_t> bins(num_bins);
  for (size_t i = 0; i < num_bins; ++i) {
    ctx_of[i] = static_cast<uint8_t>(rng() % 32);
    bins[i] = std::uniform_real_distribution<double>(0.0, 1.0)(rng) < p_one[ctx_of[i]];
  }
  BitWriter out;
  {
    Encoder enc(out);
    ContextSet contexts;
    arseg::hevc::init_contexts(contexts, 1, 30);
    for (size_t i = 0; i < num_bins; ++i) enc.decision(contexts[ctx_of[i]], bins[i]);
    enc.terminate(1);
    out.align_zero();
  }
  ContextSet contexts;
  arseg::hevc::init_contexts(contexts, 1, 30);
  CabacDecoder dec(out.bytes().data(), out.byte_size());
  uint64_t errors = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < num_bins; ++i) errors += dec.decode_decision(contexts[ctx_of[i]]) != bins[i];
  const auto t1 = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(t1 - t0).count();
  const double n = static_cast<double>(num_bins);
  std::printf("context-coded, %s: %zu bins (%.2f bits/bin) in %.3f s = %.1f Mbins/s, %llu errors\n", label, num_bins,
              8.0 * static_cast<double>(out.byte_size()) / n, seconds, n / seconds / 1e6,
              static_cast<unsigned long long>(errors));
  if (errors != 0) ++g_failures;
}

void bench() {
  bench_decisions("p(1) in [0.05, 0.95]", 0.05, 0.95);
  bench_decisions("p(1) in [0.01, 0.10]", 0.01, 0.10);
  std::mt19937_64 rng(43);
  const size_t num_bins = 20'000'000;
  const double n = static_cast<double>(num_bins);
  BitWriter raw;
  {
    Encoder enc(raw);
    for (size_t i = 0; i < num_bins; ++i) enc.bypass(static_cast<int>(rng() & 1));
    enc.terminate(1);
    raw.align_zero();
  }
  CabacDecoder bypass_dec(raw.bytes().data(), raw.byte_size());
  uint64_t sink = 0;
  const auto t2 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < num_bins; ++i) sink += static_cast<uint64_t>(bypass_dec.decode_bypass());
  const auto t3 = std::chrono::steady_clock::now();
  bypass_dec.reinit_at(0);
  for (size_t i = 0; i < num_bins / 16; ++i) sink += bypass_dec.decode_bypass_bits(16);
  const auto t4 = std::chrono::steady_clock::now();
  const double s_single = std::chrono::duration<double>(t3 - t2).count();
  const double s_multi = std::chrono::duration<double>(t4 - t3).count();
  std::printf("bypass: %.1f Mbins/s one at a time, %.1f Mbins/s 16 at a time (checksum %llu)\n", n / s_single / 1e6,
              n / s_multi / 1e6, static_cast<unsigned long long>(sink));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--dump-tables") == 0) {
    dump_tables();
    return 0;
  }
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) {
    bench();
    return g_failures == 0 ? 0 : 1;
  }
  try {
    test_tables_sanity();
    test_init_type();
    test_context_init_known_values();
    test_terminate_by_hand();
    test_init_errors_and_bounds();
    test_egk_prefix_cap();
    test_round_trip();
    test_random_data_against_reference();
    test_truncation();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    return 2;
  }
  if (g_failures != 0) {
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("cabac_test: all tests passed\n");
  return 0;
}
