// CABAC layer of the parse-only HEVC parser: context initialisation (9.3.2.2), engine initialisation (9.3.2.5) and
// the bypass binarisations (9.3.3.2, 9.3.3.3, 9.3.3.4 [9.3.3.5]); the decoding engine itself is inline in cabac.hpp.
#include "cabac.hpp"

#include <string>

namespace arseg::hevc {

namespace {

int clip3(int lo, int hi, int v) { return v < lo ? lo : (v > hi ? hi : v); }

// Floor of v / 16: the spec's arithmetic right shift (v >> 4) for negative v as well, written without relying on the
// implementation-defined shift of negative values in C++17.
int floor_div16(int v) { return v >= 0 ? v / 16 : -((-v + 15) / 16); }

}  // namespace

// initType (9.3.2.2).
int init_type(int slice_type, bool cabac_init_flag) {
  switch (slice_type) {
    case 2: return 0;                       // I
    case 1: return cabac_init_flag ? 2 : 1;  // P
    case 0: return cabac_init_flag ? 1 : 2;  // B
    default: throw ParseError(ErrorKind::InvalidValue, "slice_type " + std::to_string(slice_type) + " is not 0..2");
  }
}

// Initialisation of one context variable (9.3.2.2): slopeIdx = initValue >> 4, offsetIdx = initValue & 15,
// m = slopeIdx * 5 - 45, n = (offsetIdx << 3) - 16,
// preCtxState = Clip3(1, 126, ((m * Clip3(0, 51, SliceQpY)) >> 4) + n), valMps = preCtxState <= 63 ? 0 : 1,
// pStateIdx = valMps ? preCtxState - 64 : 63 - preCtxState.
ContextModel init_context(uint8_t init_value, int slice_qp_y) {
  const int slope_idx = init_value >> 4;
  const int offset_idx = init_value & 15;
  const int m = slope_idx * 5 - 45;
  const int n = (offset_idx << 3) - 16;
  const int pre_ctx_state = clip3(1, 126, floor_div16(m * clip3(0, 51, slice_qp_y)) + n);
  ContextModel model;
  model.mps = pre_ctx_state <= 63 ? 0 : 1;
  model.state = static_cast<uint8_t>(model.mps ? pre_ctx_state - 64 : 63 - pre_ctx_state);
  return model;
}

// Initialisation process for context variables (9.3.2.2).
void init_contexts(ContextSet& contexts, int init_type, int slice_qp_y) {
  if (init_type < 0 || init_type >= cabac_tables::kNumInitTypes) {
    throw ParseError(ErrorKind::InvalidValue, "initType " + std::to_string(init_type) + " is not 0..2");
  }
  const uint8_t* values = cabac_tables::kInitValues[init_type];
  for (size_t i = 0; i < contexts.size(); ++i) contexts[i] = init_context(values[i], slice_qp_y);
}

void cabac_detail::fail_at(ErrorKind kind, const char* message, uint64_t bit_position) {
  Location where;
  where.bit_position = static_cast<int64_t>(bit_position);
  throw ParseError(kind, message, where);
}

void CabacDecoder::fail(ErrorKind kind, const char* message) const {
  cabac_detail::fail_at(kind, message, bit_position());
}

void CabacDecoder::init(const uint8_t* data, size_t size) {
  if (data == nullptr && size != 0) throw ParseError(ErrorKind::InvalidValue, "CABAC data pointer is null");
  data_ = data;
  size_ = size;
  start(0);
}

void CabacDecoder::reinit_at(size_t byte_offset) {
  if (byte_offset > size_) {
    Location where;
    where.bit_position = static_cast<int64_t>(8 * static_cast<uint64_t>(byte_offset));
    throw ParseError(ErrorKind::Truncated,
                     "CABAC restart at byte " + std::to_string(byte_offset) + " past the end of " +
                         std::to_string(size_) + " bytes of slice data",
                     where);
  }
  start(byte_offset);
}

// Initialisation process for the arithmetic decoding engine (9.3.2.5): ivlCurrRange = 510, ivlOffset = read_bits(9).
// With no bits in the window yet, ivlOffset is "9 bits short": bits_ = -9, and the refill supplies them.
void CabacDecoder::start(size_t byte_offset) {
  next_ = byte_offset;
  value_ = 0;
  bits_ = -9;
  range_ = 510;
  stopped_ = false;
  refill();
  if (offset() >= 510) fail(ErrorKind::InvalidValue, "CABAC ivlOffset 510 or 511 at initialisation (9.3.2.5)");
}

bool CabacDecoder::trailing_bits_ok() const {
  const uint64_t position = bit_position();
  if (position == 0 || overran()) return false;
  const uint64_t last = position - 1;
  const uint32_t byte = data_[static_cast<size_t>(last / 8)];
  const int bit_in_byte = static_cast<int>(last % 8);  // 0 = most significant
  const uint32_t stop_bit = 0x80u >> bit_in_byte;
  const uint32_t after_mask = stop_bit - 1;  // the bits after the stop bit in the same byte
  return (byte & stop_bit) != 0 && (byte & after_mask) == 0;
}

// Truncated Rice (TR) binarisation (9.3.3.2), bypass-coded: prefixVal = symbolVal >> cRiceParam as a unary code
// truncated at cMax >> cRiceParam; the suffix (FL, cRiceParam bits) is present when cMax > symbolVal.
uint32_t CabacDecoder::decode_tr_bypass(uint32_t c_max, int c_rice_param) {
  if (c_rice_param < 0 || c_rice_param > 31) fail(ErrorKind::InvalidValue, "TR cRiceParam outside 0..31");
  const uint32_t prefix_max = c_max >> c_rice_param;
  if ((prefix_max << c_rice_param) != c_max) {
    fail(ErrorKind::InvalidValue, "TR cMax is not a multiple of 1 << cRiceParam");
  }
  uint32_t prefix = 0;
  while (prefix < prefix_max && decode_bypass() == 1) ++prefix;
  if (prefix == prefix_max) return c_max;
  return (prefix << c_rice_param) | decode_bypass_bits(c_rice_param);
}

// k-th order Exp-Golomb (EGk) binarisation (9.3.3.3), bypass-coded: each prefix bin equal to 1 adds 1 << k and
// increments k; after the terminating 0, k suffix bins follow, most significant first.
uint32_t CabacDecoder::decode_egk_bypass(int k) {
  if (k < 0 || k > 31) fail(ErrorKind::InvalidValue, "EGk order outside 0..31");
  uint64_t value = 0;
  int order = k;
  int ones = 0;
  while (decode_bypass() == 1) {
    if (++ones == kMaxEgkPrefix) fail(ErrorKind::InvalidValue, "EGk prefix longer than 32 bins");
    value += uint64_t{1} << order;
    ++order;
  }
  // order <= 62 here, so the suffix fits below 2^62 and value below 2^63.
  if (order > 32) {
    value += static_cast<uint64_t>(decode_bypass_bits(order - 32)) << 32;
    order = 32;
  }
  value += decode_bypass_bits(order);
  if (value > UINT32_MAX) fail(ErrorKind::InvalidValue, "EGk value above 2^32 - 1");
  return static_cast<uint32_t>(value);
}

// Fixed-length (FL) binarisation (9.3.3.4 [9.3.3.5]), bypass-coded: fixedLength = Ceil(Log2(cMax + 1)).
uint32_t CabacDecoder::decode_fl_bypass(uint32_t c_max) {
  int length = 0;
  while (length < 32 && (c_max >> length) != 0) ++length;
  const uint32_t value = decode_bypass_bits(length);
  if (value > c_max) fail(ErrorKind::InvalidValue, "FL value above cMax");
  return value;
}

}  // namespace arseg::hevc
