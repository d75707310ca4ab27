// Incremental detokenisation for streaming responses: each Push() returns the text the
// new token completes, never half a UTF-8 character. Bytes that may still become a valid
// character are held back; bytes that never can are emitted as U+FFFD. For any id
// sequence, the Push() outputs followed by Flush() concatenate to Tokenizer::Decode().
//
// One decoder per stream, used by one thread at a time; the Tokenizer must outlive it.
#ifndef RINGSERVE_WORKER_TOKENIZER_STREAM_DECODER_H_
#define RINGSERVE_WORKER_TOKENIZER_STREAM_DECODER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "worker/tokenizer/tokenizer.h"

namespace ringserve::tokenizer {

class StreamDecoder {
 public:
  // `previous_token` is the token before the first one pushed (e.g. the prompt's last
  // token), which decides the SentencePiece after-BOS space rule; -1 for none. `spelled`:
  // control tokens written as their pieces (Mistral v11's call markers, Magistral's thought
  // tags, so that a reply's calls and thought can be parsed from its text); every other
  // control token has no text.
  explicit StreamDecoder(const Tokenizer& tokenizer, int32_t previous_token = -1,
                         std::vector<int32_t> spelled = {})
      : tokenizer_(&tokenizer), previous_(previous_token), spelled_(std::move(spelled)) {}

  std::string Push(int32_t id);
  // Ends the stream: whatever is held back is emitted (as U+FFFD when incomplete).
  std::string Flush();

 private:
  const Tokenizer* tokenizer_;
  int32_t previous_;
  std::vector<int32_t> spelled_;
  std::string pending_;  // bytes of an incomplete UTF-8 sequence, at most 3
};

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_STREAM_DECODER_H_
