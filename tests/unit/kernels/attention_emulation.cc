#include "tests/unit/kernels/attention_emulation.h"

#include <algorithm>
#include <array>

#include "kernels/cuda/cuda_index.h"

namespace ringserve::kernels::testing {
namespace {

using cuda::Add;
using cuda::Div;
using cuda::Exp;
using cuda::Fma;
using cuda::kAttentionSplitKeys;
using cuda::kAttentionTileKeys;
using cuda::kNegInf;
using cuda::MaxF;
using cuda::MergeValue;
using cuda::Mul;
using cuda::RescaleFactor;
using cuda::Sub;

constexpr int kLanes = 32;
static_assert(kAttentionTileKeys == kLanes);
using Lanes = std::array<float, kLanes>;

// WarpSum / WarpMax: at each step lane i combines its value with lane i ^ offset's.
template <typename Op>
float Butterfly(Lanes v, Op op) {
  for (int offset = 16; offset > 0; offset /= 2) {
    Lanes next;
    for (int i = 0; i < kLanes; ++i) next[i] = op(v[i], v[i ^ offset]);
    v = next;
  }
  return v[0];
}

struct SplitState {
  float m = kNegInf;
  float l = 0;
  std::vector<float> acc;
};

// RowTileStep for keys [k0, k0 + 32); keys at or past key_end are not loaded (zeros).
void TileStep(const EmulatedRow& row, int k0, int key_end, SplitState& st) {
  const int hd = row.head_dim;
  Lanes score, prob;
  std::vector<std::vector<float>> v_tile(kLanes, std::vector<float>(hd, 0.0F));
  for (int j = 0; j < kLanes; ++j) {
    const int key = k0 + j;
    float dot = 0;
    if (key < key_end) {
      const float* k = row.k(key);
      for (int d = 0; d < hd; ++d) dot = Fma(row.q[d], k[d], dot);
      std::copy_n(row.v(key), hd, v_tile[j].begin());
    } else {
      for (int d = 0; d < hd; ++d) dot = Fma(row.q[d], 0.0F, dot);
    }
    const bool valid = key >= row.first_key && key <= row.position;
    score[j] = valid ? Mul(dot, row.scale) : kNegInf;
  }
  const float m_new = MaxF(st.m, Butterfly(score, [](float a, float b) { return MaxF(a, b); }));
  if (m_new == kNegInf) return;
  const float alpha = RescaleFactor(st.m, m_new);
  for (int j = 0; j < kLanes; ++j) {
    prob[j] = k0 + j >= row.first_key && k0 + j <= row.position ? Exp(Sub(score[j], m_new)) : 0.0F;
  }
  const float l_new =
      Add(Mul(st.l, alpha), Butterfly(prob, [](float a, float b) { return Add(a, b); }));
  for (int d = 0; d < hd; ++d) {
    float a = st.acc[d];
    if (alpha != 1.0F) a = Mul(a, alpha);
    for (int j = 0; j < kLanes; ++j) {
      if (prob[j] != 0.0F) a = Fma(prob[j], v_tile[j][d], a);
    }
    st.acc[d] = a;
  }
  st.m = m_new;
  st.l = l_new;
}

}  // namespace

std::vector<float> EmulateAttentionRow(const EmulatedRow& row, const EmulatedSchedule& schedule) {
  const int hd = row.head_dim;
  const int context = schedule.split_parallel ? row.position + 1 : schedule.load_limit;
  const int splits = cuda::NumSplits(context);
  std::vector<SplitState> partials;
  float big_m = kNegInf, big_l = 0;
  std::vector<float> o(hd, 0.0F);
  // Splits before the one of the row's first key hold none of its keys: the kernel skips them.
  for (int s = row.first_key / kAttentionSplitKeys; s < splits; ++s) {
    SplitState st;
    st.acc.assign(hd, 0.0F);
    const int key_end = std::min(context, (s + 1) * kAttentionSplitKeys);
    for (int k0 = s * kAttentionSplitKeys; k0 < key_end; k0 += kAttentionTileKeys) {
      TileStep(row, k0, key_end, st);
    }
    if (s * kAttentionSplitKeys > row.position) continue;
    if (schedule.split_parallel) {
      partials.push_back(st);
      continue;
    }
    const float m_new = MaxF(big_m, st.m);
    const float a = RescaleFactor(big_m, m_new), b = RescaleFactor(st.m, m_new);
    for (int d = 0; d < hd; ++d) o[d] = MergeValue(o[d], a, st.acc[d], b);
    big_l = MergeValue(big_l, a, st.l, b);
    big_m = m_new;
  }
  if (schedule.split_parallel) {  // MergeSplitsKernel, one dim at a time
    for (int d = 0; d < hd; ++d) {
      float m_run = kNegInf, l_run = 0, o_run = 0;
      for (const SplitState& st : partials) {
        const float m_new = MaxF(m_run, st.m);
        const float a = RescaleFactor(m_run, m_new), b = RescaleFactor(st.m, m_new);
        l_run = MergeValue(l_run, a, st.l, b);
        o_run = MergeValue(o_run, a, st.acc[d], b);
        m_run = m_new;
      }
      o[d] = o_run;
      big_l = l_run;
    }
  }
  std::vector<float> out(hd);
  for (int d = 0; d < hd; ++d) out[d] = Div(o[d], big_l);
  return out;
}

}  // namespace ringserve::kernels::testing
