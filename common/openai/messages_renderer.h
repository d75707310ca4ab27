// A Generate stream rendered as Anthropic's Messages API: a whole "message" object, or its
// stream of Server-Sent Events (message_start, content_block_start, content_block_delta,
// content_block_stop, message_delta, message_stop). The reply's items (reply_items.h) are its
// content blocks: the thought a "thinking" block, the text a "text" block, each call a
// "tool_use" block whose input is the call's arguments as a JSON object.
#ifndef RINGSERVE_COMMON_OPENAI_MESSAGES_RENDERER_H_
#define RINGSERVE_COMMON_OPENAI_MESSAGES_RENDERER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/openai/generate_renderer.h"
#include "common/openai/openai_response.h"
#include "common/openai/reply_items.h"
#include "ringserve/v1/inference.pb.h"

namespace ringserve::openai {

struct MessagesMeta {
  std::string id;     // "msg_..."
  std::string model;  // as the client named it (or the served name)
};

// Anthropic's stop_reason for a finish reason: end_turn, max_tokens, stop_sequence, tool_use.
const char* StopReasonName(ringserve::v1::FinishReason reason);

// One request's stream. Thread: one at a time.
class MessagesRenderer final : public GenerateRenderer, private ReplyItems::Listener {
 public:
  explicit MessagesRenderer(MessagesMeta meta);

  // The first call's events begin with message_start.
  std::string StreamEvents(int request, const ringserve::v1::GenerateResponse& message) override;
  // Success: the open block's content_block_stop, message_delta (stop reason, usage) and
  // message_stop. A failure: an "error" event.
  std::string StreamEnd(const absl::Status& error) override;

  void Accumulate(int request, const ringserve::v1::GenerateResponse& message) override;
  // The "message" object.
  std::string Body() const override;
  std::string ErrorJson(const absl::Status& error) const override;

 private:
  void Opened(int index) override;
  void Added(int index, const std::string& delta, const OrderedJson& logprobs) override;
  void Closed(int index) override;

  // One event onto events_, its type in "type" too.
  void Event(const char* type, OrderedJson fields);
  // The content block of item `index`; `opening`: as content_block_start shows it.
  OrderedJson Block(int index, bool opening) const;
  // The message object; without the reply's end (message_start's) no stop reason yet.
  OrderedJson Object(bool ended) const;
  OrderedJson Usage() const;

  const MessagesMeta meta_;
  ReplyItems reply_;
  std::string events_;  // the events of the call in progress
  bool started_ = false;
  // GenerateResponse.prompt_tokens of the first message: message_start's input_tokens (how
  // many came from the cache is known only at the end).
  int64_t announced_input_tokens_ = 0;
};

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_MESSAGES_RENDERER_H_
