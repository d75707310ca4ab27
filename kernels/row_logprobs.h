// What a request that asks for logprobs gets back for each token, computed where the logits
// are (Backend::LogprobRows), so a row's 128k logits never cross the bus for it: the chosen
// token's log-probability and the kMaxTopLogprobs most likely tokens, all under the raw
// distribution softmax(logits) (before penalties and temperature).
//
// log_total = m + log(sum_i Exp(logit_i - m)), m the largest logit; NaN logits take no part
// (a row without a finite m has log_total = m). A token's logprob is logit - log_total. The
// top tokens are the first of SortKey's order (logit descending, lower id first on ties, NaN
// last), so every backend names the same ones; their logprobs may differ in the last bits,
// as the sum's order does.
#ifndef RINGSERVE_KERNELS_ROW_LOGPROBS_H_
#define RINGSERVE_KERNELS_ROW_LOGPROBS_H_

#include <cstdint>

namespace ringserve::kernels {

// The most alternatives a request may ask for (the API's limit).
inline constexpr int kMaxTopLogprobs = 20;

struct RowLogprobs {
  float chosen = 0;     // the chosen token's logprob
  float log_total = 0;  // logprob of token t = logit_t - log_total
  // min(kMaxTopLogprobs, vocabulary) tokens in order; -1 past the vocabulary.
  int32_t top_ids[kMaxTopLogprobs] = {};
  float top_logprobs[kMaxTopLogprobs] = {};
};

}  // namespace ringserve::kernels

#endif  // RINGSERVE_KERNELS_ROW_LOGPROBS_H_
