// Streams that hold back text while it may still turn into a tag (tool_calls.cc,
// thought_splitter.cc).
#ifndef RINGSERVE_WORKER_TOKENIZER_PARTIAL_TAG_H_
#define RINGSERVE_WORKER_TOKENIZER_PARTIAL_TAG_H_

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace ringserve::tokenizer {

// How many of `text`'s last bytes are a proper prefix of `tag` (the longest such run).
inline size_t PartialTagAtEnd(std::string_view text, std::string_view tag) {
  for (size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_PARTIAL_TAG_H_
