#include "worker/tokenizer/thought_splitter.h"

#include <algorithm>

#include "worker/tokenizer/partial_tag.h"

namespace ringserve::tokenizer {
namespace {

constexpr std::string_view kSpace = " \t\n\r";

}  // namespace

ThoughtSplitter::Output ThoughtSplitter::Feed(std::string_view text) {
  Output out;
  pending_.append(text);
  Step(out);
  return out;
}

ThoughtSplitter::Output ThoughtSplitter::Finish() {
  Output out;
  Step(out);
  switch (state_) {
    case State::kStart:
    case State::kAnswer:
      Emit(out.answer, pending_.size());  // a reply that never opened a thought, or a partial tag
      break;
    case State::kThought: {  // cut short inside the thought
      const size_t end = pending_.find_last_not_of(kSpace);
      if (end != std::string::npos) Emit(out.thought, end + 1);
      break;
    }
    case State::kAfterThought:
      break;  // only the whitespace after the thought
  }
  Drop(pending_.size());
  return out;
}

void ThoughtSplitter::Resume(std::string_view reply_start) {
  Output ignored;
  pending_.append(reply_start);
  Step(ignored);
  resumed_ = pending_.size();
}

void ThoughtSplitter::Emit(std::string& to, size_t count) {
  const size_t skipped = std::min(resumed_, count);
  to.append(pending_, skipped, count - skipped);
  Drop(count);
}

void ThoughtSplitter::Drop(size_t count) {
  resumed_ -= std::min(resumed_, count);
  pending_.erase(0, count);
}

void ThoughtSplitter::Step(Output& out) {
  for (;;) {
    switch (state_) {
      case State::kStart: {
        const size_t text = pending_.find_first_not_of(kSpace);
        if (text == std::string::npos) return;
        const std::string_view rest = std::string_view(pending_).substr(text);
        if (rest.starts_with(open_)) {
          Drop(text + open_.size());
          state_ = State::kThought;
          continue;
        }
        if (open_.starts_with(rest)) return;  // may still be the tag
        state_ = State::kAnswer;
        continue;
      }
      case State::kThought: {
        if (!thought_started_) {  // the newlines that open the thought go with the tag
          const size_t text = pending_.find_first_not_of(kSpace);
          Drop(std::min(text, pending_.size()));
          if (pending_.empty()) return;
        }
        const size_t close = pending_.find(close_);
        if (close != std::string::npos) {
          const size_t end = pending_.find_last_not_of(kSpace, close == 0 ? 0 : close - 1);
          size_t emitted = 0;
          if (close > 0 && end != std::string::npos) {
            emitted = end + 1;
            Emit(out.thought, emitted);
          }
          Drop(close + close_.size() - emitted);
          state_ = State::kAfterThought;
          continue;
        }
        // Hold a partial closing tag and the whitespace before it.
        size_t keep = pending_.size() - PartialTagAtEnd(pending_, close_);
        while (keep > 0 && kSpace.find(pending_[keep - 1]) != std::string_view::npos) --keep;
        thought_started_ = thought_started_ || keep > 0;
        Emit(out.thought, keep);
        return;
      }
      case State::kAfterThought: {
        const size_t text = pending_.find_first_not_of(kSpace);
        if (text == std::string::npos) {
          Drop(pending_.size());
          return;
        }
        Drop(text);
        state_ = State::kAnswer;
        continue;
      }
      case State::kAnswer:
        Emit(out.answer, pending_.size());
        return;
    }
  }
}

}  // namespace ringserve::tokenizer
