// LogprobRows cases of the table-driven op suite (kernel_ops_test.cc): the log-probabilities
// of listed rows against a float64 log-softmax, the top tokens against a full sort, on rows
// with ties, -inf and NaN logits, and rows listed out of order and twice.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace ringserve::kernels::testing {

using Check = std::function<void(Backend&, std::mt19937_64&)>;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Rows of N(0, 3) logits; every third row of small integers (many ties), every fourth with
// a few -inf (masked tokens), every fifth with a NaN, when the row is long enough that the
// NaN is never among the top tokens.
std::vector<float> LogprobLogits(std::mt19937_64& rng, int64_t rows, int64_t cols) {
  std::normal_distribution<float> normal(0.0F, 3.0F);
  std::uniform_int_distribution<int> level(-2, 2);
  std::uniform_int_distribution<int64_t> at(0, cols - 1);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    float* row = &x[r * cols];
    for (int64_t c = 0; c < cols; ++c) {
      row[c] = r % 3 == 1 ? static_cast<float>(level(rng)) : normal(rng);
    }
    if (r % 4 == 2) {
      for (int k = 0; k < 3; ++k) row[at(rng)] = -std::numeric_limits<float>::infinity();
    }
    if (r % 5 == 3 && cols > int64_t{2} * kMaxTopLogprobs) row[at(rng)] = kNaN;
  }
  return x;
}

// Float64 log-softmax of one row (NaN ignored), and its order by SortKey.
struct Reference {
  double log_total = 0;
  std::vector<int32_t> order;
};

Reference ReferenceLogprobs(const float* row, int64_t cols) {
  Reference ref;
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t c = 0; c < cols; ++c) {
    if (!std::isnan(row[c])) m = std::max<double>(m, row[c]);
  }
  double total = 0;
  for (int64_t c = 0; c < cols; ++c) {
    if (!std::isnan(row[c])) total += std::exp(static_cast<double>(row[c]) - m);
  }
  ref.log_total = m + std::log(total);
  ref.order.resize(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) ref.order[c] = static_cast<int32_t>(c);
  std::sort(ref.order.begin(), ref.order.end(),
            [row](int32_t a, int32_t b) { return SortKey(row[a], a) > SortKey(row[b], b); });
  return ref;
}

void ExpectLogprob(float got, double want, const std::string& what) {
  if (std::isinf(want)) {
    EXPECT_EQ(got, want) << what;
    return;
  }
  // The sum of 128k exponentials in float: a few 1e-6 relative, in any order.
  EXPECT_NEAR(got, want, 1e-4 + 1e-6 * std::fabs(want)) << what;
}

void CheckLogprobRows(Backend& b, std::mt19937_64& rng, int64_t rows, int64_t cols) {
  const std::vector<float> x = LogprobLogits(rng, rows, cols);
  std::vector<int32_t> ids(static_cast<size_t>(rows));
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(cols - 1));
  for (int64_t r = 0; r < rows; ++r) {
    do {
      ids[r] = token(rng);
    } while (std::isnan(x[r * cols + ids[r]]));
  }
  // Every other row, last first, and row 0 twice.
  std::vector<int32_t> listed;
  for (int64_t r = rows - 1; r >= 0; r -= 2) listed.push_back(static_cast<int32_t>(r));
  listed.push_back(0);
  DeviceArray<float> xd(b, x);
  DeviceArray<int32_t> idd(b, ids);
  DeviceArray<int32_t> rowd(b, listed);
  DeviceArray<RowLogprobs> out(b, std::vector<RowLogprobs>(listed.size()));
  b.LogprobRows(xd.AsTensor(rows, cols), rowd.data(), static_cast<int32_t>(listed.size()),
                idd.data(), out.data());
  const std::vector<RowLogprobs> got = out.Download();
  for (size_t i = 0; i < listed.size(); ++i) {
    const int32_t r = listed[i];
    const float* row = &x[r * cols];
    const Reference ref = ReferenceLogprobs(row, cols);
    const std::string what = absl::StrCat("listed ", i, " (row ", r, ")");
    ExpectLogprob(got[i].log_total, ref.log_total, what + " log_total");
    ExpectLogprob(got[i].chosen, row[ids[r]] - ref.log_total, what + " chosen");
    const int64_t top = std::min<int64_t>(cols, kMaxTopLogprobs);
    for (int64_t k = 0; k < kMaxTopLogprobs; ++k) {
      const std::string at = absl::StrCat(what, " top ", k);
      if (k >= top) {
        EXPECT_EQ(got[i].top_ids[k], -1) << at;
        continue;
      }
      const int32_t want = ref.order[k];
      ASSERT_EQ(got[i].top_ids[k], want) << at;
      ExpectLogprob(got[i].top_logprobs[k], row[want] - ref.log_total, at);
    }
  }
}

// What LogprobRows needs of the penalties: PenalizeRows keeps each logit it replaces, and
// UnpenalizeRows puts them back, bit for bit.
void CheckUnpenalizeRows(Backend& b, std::mt19937_64& rng, int64_t rows, int64_t cols) {
  const std::vector<float> x = LogprobLogits(rng, rows, cols);
  std::vector<RowSampling> params(rows);
  std::vector<PenaltyEntry> entries;
  std::uniform_int_distribution<int32_t> count(0, 3);
  for (int64_t r = 0; r < rows; ++r) {
    RowSampling& p = params[r];
    p.repetition_penalty = 1.5F;
    p.presence_penalty = 0.25F;
    p.penalty_begin = static_cast<int32_t>(entries.size());
    for (int64_t c = r % 2; c < cols; c += 2) {
      entries.push_back({.token = static_cast<int32_t>(c), .count = count(rng)});
    }
    entries.push_back({.token = static_cast<int32_t>(cols), .count = 1});  // skipped
    p.penalty_end = static_cast<int32_t>(entries.size());
  }
  DeviceArray<float> xd(b, x);
  DeviceArray<RowSampling> pd(b, params);
  DeviceArray<PenaltyEntry> ed(b, entries);
  b.PenalizeRows(xd.AsTensor(rows, cols), pd.data(), ed.data());
  const std::vector<PenaltyEntry> recorded = ed.Download();
  for (int64_t r = 0; r < rows; ++r) {
    for (int32_t e = params[r].penalty_begin; e < params[r].penalty_end - 1; ++e) {
      ASSERT_EQ(AsBits(recorded[e].raw), AsBits(x[r * cols + recorded[e].token]))
          << "row " << r << " entry " << e;
    }
  }
  b.UnpenalizeRows(xd.AsTensor(rows, cols), pd.data(), ed.data());
  const std::vector<float> restored = xd.Download();
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(AsBits(restored[i]), AsBits(x[i])) << i;
}

}  // namespace

std::vector<std::pair<std::string, Check>> LogprobCases() {
  std::vector<std::pair<std::string, Check>> cases;
  using Shape = std::pair<int64_t, int64_t>;  // rows, cols
  for (const Shape& shape :
       std::vector<Shape>{{1, 1}, {3, 7}, {9, 20}, {9, 21}, {40, 1000}, {12, 5000}, {3, 128256}}) {
    cases.emplace_back(absl::StrCat("LogprobRows_", shape.first, "x", shape.second),
                       [shape](Backend& b, std::mt19937_64& rng) {
                         CheckLogprobRows(b, rng, shape.first, shape.second);
                       });
  }
  for (const Shape& shape : std::vector<Shape>{{1, 1}, {6, 333}, {2, 128256}}) {
    cases.emplace_back(absl::StrCat("UnpenalizeRows_", shape.first, "x", shape.second),
                       [shape](Backend& b, std::mt19937_64& rng) {
                         CheckUnpenalizeRows(b, rng, shape.first, shape.second);
                       });
  }
  return cases;
}

}  // namespace ringserve::kernels::testing
