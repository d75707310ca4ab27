#include "worker/tokenizer/stream_decoder.h"

#include <algorithm>

#include "worker/tokenizer/unicode.h"

namespace ringserve::tokenizer {

std::string StreamDecoder::Push(int32_t id) {
  if (id >= 0 && id < tokenizer_->vocab_size() &&
      std::find(spelled_.begin(), spelled_.end(), id) != spelled_.end()) {
    pending_ += tokenizer_->vocab().tokens[static_cast<size_t>(id)];
  } else {
    tokenizer_->AppendTokenBytes(id, previous_, &pending_);
  }
  previous_ = id;
  std::string text;
  // RepairUtf8 is prefix-stable, so repairing piecewise equals Decode()'s repair of the
  // whole byte string.
  const size_t used = RepairUtf8(pending_, /*final=*/false, &text);
  pending_.erase(0, used);
  return text;
}

std::string StreamDecoder::Flush() {
  std::string text;
  RepairUtf8(pending_, /*final=*/true, &text);
  pending_.clear();
  return text;
}

}  // namespace ringserve::tokenizer
