#include "worker/engine/ngram_draft.h"

#include <algorithm>
#include <cstddef>

namespace ringserve::engine {

void ProposeNgramDraft(std::span<const int32_t> tokens, const NgramDraftOptions& options,
                       std::vector<int32_t>* draft) {
  draft->clear();
  if (options.max_tokens <= 0 || options.min_ngram < 1) return;
  const size_t size = tokens.size();
  for (auto n = static_cast<size_t>(options.max_ngram); n >= static_cast<size_t>(options.min_ngram);
       --n) {
    if (size <= n) continue;
    const std::span<const int32_t> suffix = tokens.last(n);
    // Latest first: an occurrence ending at `end` (exclusive), before the suffix itself.
    for (size_t end = size - 1; end >= n; --end) {
      if (tokens[end - 1] != suffix.back() ||
          !std::equal(suffix.begin(), suffix.end() - 1, tokens.begin() + (end - n))) {
        continue;
      }
      const size_t take = std::min(static_cast<size_t>(options.max_tokens), size - end);
      draft->assign(tokens.begin() + end, tokens.begin() + (end + take));
      return;
    }
  }
}

}  // namespace ringserve::engine
