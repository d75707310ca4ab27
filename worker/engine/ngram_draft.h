// Draft tokens for speculative decoding by prompt lookup: text that a model copies from its
// context (quoted passages, code being edited, names, repeated structure) is predicted by
// finding where the sequence's last few tokens occurred before and proposing what followed
// them. No draft model, no extra weights; a step verifies the drafts in one pass.
#ifndef RINGSERVE_WORKER_ENGINE_NGRAM_DRAFT_H_
#define RINGSERVE_WORKER_ENGINE_NGRAM_DRAFT_H_

#include <cstdint>
#include <span>
#include <vector>

namespace ringserve::engine {

struct NgramDraftOptions {
  int32_t max_tokens = 0;  // most draft tokens proposed; 0 = none
  int32_t max_ngram = 3;   // the longest suffix looked up
  int32_t min_ngram = 1;   // the shortest; 1 <= min_ngram <= max_ngram
};

// Replaces *draft with the tokens that followed the latest earlier occurrence of the last n
// tokens of `tokens`, for the largest n in [min_ngram, max_ngram] that has one, up to
// max_tokens of them; empty when no suffix recurs. O(tokens.size() * max_ngram) at worst.
void ProposeNgramDraft(std::span<const int32_t> tokens, const NgramDraftOptions& options,
                       std::vector<int32_t>* draft);

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_NGRAM_DRAFT_H_
