#include "refs.hpp"

#include <algorithm>
#include <string>

namespace arseg::hevc {

namespace {

// v mod m in [0, m) for m a power of two, also for negative v.
int64_t lsb_of(int64_t v, int64_t m) { return ((v % m) + m) % m; }

constexpr int64_t kPocMin = -(int64_t{1} << 31);
constexpr int64_t kPocMax = (int64_t{1} << 31) - 1;

}  // namespace

// 8.3.1 Decoding process for picture order count
int64_t PocDecoder::decode(const SliceHeader& h, const Sps& sps, bool no_rasl_output_flag) {
  const int64_t max_lsb = sps.MaxPicOrderCntLsb;
  const int64_t lsb = h.slice_pic_order_cnt_lsb;
  int64_t msb = 0;
  if (!(is_irap(h.nal.nal_unit_type) && no_rasl_output_flag)) {
    const int64_t prev_lsb = lsb_of(prev_tid0_poc_, max_lsb);
    const int64_t prev_msb = prev_tid0_poc_ - prev_lsb;
    if (lsb < prev_lsb && prev_lsb - lsb >= max_lsb / 2) {  // (8-1)
      msb = prev_msb + max_lsb;
    } else if (lsb > prev_lsb && lsb - prev_lsb > max_lsb / 2) {
      msb = prev_msb - max_lsb;
    } else {
      msb = prev_msb;
    }
  }
  const int64_t poc = msb + lsb;  // (8-2)
  if (poc < kPocMin || poc > kPocMax) {
    throw ParseError(ErrorKind::InvalidValue, "PicOrderCntVal " + std::to_string(poc) + " outside the 32-bit range");
  }
  return poc;
}

void PocDecoder::picture_decoded(const SliceHeader& h, int64_t poc) {
  const int t = h.nal.nal_unit_type;
  if (h.nal.temporal_id() == 0 && !is_rasl(t) && !is_radl(t) && !is_sub_layer_non_reference(t)) prev_tid0_poc_ = poc;
}

DpbPicturePtr Dpb::generate(int64_t poc, Marking marking) {
  auto p = std::make_shared<DpbPicture>();
  p->id = next_id_++;
  p->poc = poc;
  p->marking = marking;
  p->missing = true;
  pictures_.push_back(p);
  return p;
}

DpbPicturePtr Dpb::add_current(int64_t poc, int64_t decode_index) {
  auto p = std::make_shared<DpbPicture>();
  p->id = next_id_++;
  p->poc = poc;
  p->decode_index = decode_index;
  p->marking = Marking::kShortTerm;
  pictures_.push_back(p);
  return p;
}

// 8.3.2 Decoding process for reference picture set; 8.3.3 generation of unavailable reference pictures.
RefPicSet Dpb::apply_rps(const SliceHeader& h, const Sps& sps, int64_t poc, bool irap_no_rasl, bool generate_foll) {
  RefPicSet s;
  if (irap_no_rasl) {
    for (auto& p : pictures_) p->marking = Marking::kUnused;
    pictures_.clear();
  }
  const int64_t max_lsb = sps.MaxPicOrderCntLsb;
  std::vector<bool> curr_msb_present;
  std::vector<bool> foll_msb_present;
  if (!is_idr(h.nal.nal_unit_type)) {
    const ShortTermRps& st = h.st_rps;
    for (int i = 0; i < st.num_negative_pics; ++i) {  // (8-5)
      (st.used_by_curr_pic_s0[i] ? s.PocStCurrBefore : s.PocStFoll).push_back(poc + st.delta_poc_s0[i]);
    }
    for (int i = 0; i < st.num_positive_pics; ++i) {
      (st.used_by_curr_pic_s1[i] ? s.PocStCurrAfter : s.PocStFoll).push_back(poc + st.delta_poc_s1[i]);
    }
    for (int i = 0; i < h.num_long_term_sps + h.num_long_term_pics; ++i) {
      int64_t poc_lt = h.PocLsbLt[i];
      if (h.delta_poc_msb_present_flag[i]) {
        poc_lt += poc - h.DeltaPocMsbCycleLt[i] * max_lsb - lsb_of(poc, max_lsb);
      }
      if (h.UsedByCurrPicLt[i]) {
        s.PocLtCurr.push_back(poc_lt);
        curr_msb_present.push_back(h.delta_poc_msb_present_flag[i]);
      } else {
        s.PocLtFoll.push_back(poc_lt);
        foll_msb_present.push_back(h.delta_poc_msb_present_flag[i]);
      }
    }
  }
  const size_t total = s.PocStCurrBefore.size() + s.PocStCurrAfter.size() + s.PocStFoll.size() + s.PocLtCurr.size() +
                       s.PocLtFoll.size();
  if (total > static_cast<size_t>(kMaxDpbSize)) {
    throw ParseError(ErrorKind::InvalidValue,
                     "reference picture set of " + std::to_string(total) + " pictures exceeds the DPB size");
  }

  // Long-term candidates: any reference picture, matched on the full POC or on its LSBs (8-6 first part).
  const auto find_lt = [&](int64_t value, bool msb_present) -> DpbPicturePtr {
    for (auto& p : pictures_) {
      if (p->marking == Marking::kUnused) continue;
      if (msb_present ? p->poc == value : lsb_of(p->poc, max_lsb) == value) return p;
    }
    return nullptr;
  };
  for (size_t i = 0; i < s.PocLtCurr.size(); ++i) s.LtCurr.push_back(find_lt(s.PocLtCurr[i], curr_msb_present[i]));
  for (size_t i = 0; i < s.PocLtFoll.size(); ++i) s.LtFoll.push_back(find_lt(s.PocLtFoll[i], foll_msb_present[i]));
  for (auto& p : s.LtCurr) {
    if (p) p->marking = Marking::kLongTerm;
  }
  for (auto& p : s.LtFoll) {
    if (p) p->marking = Marking::kLongTerm;
  }
  // Short-term: short-term reference pictures with the exact POC (8-7).
  const auto find_st = [&](int64_t value) -> DpbPicturePtr {
    for (auto& p : pictures_) {
      if (p->marking == Marking::kShortTerm && p->poc == value) return p;
    }
    return nullptr;
  };
  for (int64_t v : s.PocStCurrBefore) s.StCurrBefore.push_back(find_st(v));
  for (int64_t v : s.PocStCurrAfter) s.StCurrAfter.push_back(find_st(v));
  for (int64_t v : s.PocStFoll) s.StFoll.push_back(find_st(v));

  // Everything not in the RPS becomes unused and leaves the DPB.
  std::vector<DpbPicturePtr> kept;
  for (auto& p : pictures_) {
    const auto in = [&](const std::vector<DpbPicturePtr>& v) { return std::find(v.begin(), v.end(), p) != v.end(); };
    if (in(s.StCurrBefore) || in(s.StCurrAfter) || in(s.StFoll) || in(s.LtCurr) || in(s.LtFoll)) {
      kept.push_back(p);
    } else {
      p->marking = Marking::kUnused;
    }
  }
  pictures_ = std::move(kept);

  // 8.3.3.2: placeholders for entries with "no reference picture". The Curr lists always get one (a
  // conforming non-RASL picture has none missing; after stream errors or a cut they keep the lists usable).
  const auto fill = [&](std::vector<DpbPicturePtr>& pics, const std::vector<int64_t>& pocs, Marking m) {
    for (size_t i = 0; i < pics.size(); ++i) {
      if (!pics[i]) {
        pics[i] = generate(pocs[i], m);
        ++s.generated_missing;
      }
    }
  };
  fill(s.StCurrBefore, s.PocStCurrBefore, Marking::kShortTerm);
  fill(s.StCurrAfter, s.PocStCurrAfter, Marking::kShortTerm);
  fill(s.LtCurr, s.PocLtCurr, Marking::kLongTerm);
  if (generate_foll) {
    fill(s.StFoll, s.PocStFoll, Marking::kShortTerm);
    fill(s.LtFoll, s.PocLtFoll, Marking::kLongTerm);
  }
  return s;
}

// 8.3.4 Decoding process for reference picture lists construction
std::vector<RefEntry> build_ref_pic_list(int list, const SliceHeader& h, const RefPicSet& rps) {
  std::vector<RefEntry> out;
  const int active = h.num_ref_idx_active(list);
  if (active == 0) return out;
  const int total = static_cast<int>(rps.StCurrBefore.size() + rps.StCurrAfter.size() + rps.LtCurr.size());
  if (total == 0) throw ParseError(ErrorKind::InvalidValue, "P/B slice with an empty RefPicSetStCurr/LtCurr");
  const int num_temp = std::max(active, total);  // (8-8) NumRpsCurrTempList0 / (8-10) NumRpsCurrTempList1
  const auto& first = list == 0 ? rps.StCurrBefore : rps.StCurrAfter;
  const auto& second = list == 0 ? rps.StCurrAfter : rps.StCurrBefore;
  std::vector<std::pair<DpbPicturePtr, bool>> temp;
  temp.reserve(static_cast<size_t>(num_temp));
  while (static_cast<int>(temp.size()) < num_temp) {
    for (size_t i = 0; i < first.size() && static_cast<int>(temp.size()) < num_temp; ++i) temp.emplace_back(first[i], false);
    for (size_t i = 0; i < second.size() && static_cast<int>(temp.size()) < num_temp; ++i) temp.emplace_back(second[i], false);
    for (size_t i = 0; i < rps.LtCurr.size() && static_cast<int>(temp.size()) < num_temp; ++i) temp.emplace_back(rps.LtCurr[i], true);
  }
  const bool modified = list == 0 ? h.ref_pic_list_modification_flag_l0 : h.ref_pic_list_modification_flag_l1;
  const auto& entries = list == 0 ? h.list_entry_l0 : h.list_entry_l1;
  for (int r = 0; r < active; ++r) {  // (8-9) / (8-11)
    const int idx = modified ? entries[static_cast<size_t>(r)] : r;
    if (idx >= num_temp) throw ParseError(ErrorKind::InvalidValue, "list_entry beyond the reference picture set");
    const auto& e = temp[static_cast<size_t>(idx)];
    RefEntry ref;
    ref.picture = e.first;
    ref.poc = e.first->poc;
    ref.long_term = e.second;
    ref.missing = e.first->missing;
    ref.dpb_id = e.first->id;
    out.push_back(ref);
  }
  return out;
}

}  // namespace arseg::hevc
