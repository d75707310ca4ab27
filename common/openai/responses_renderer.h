// A Generate stream rendered as OpenAI's Responses API: a whole "response" object, or its
// stream of typed Server-Sent Events (response.created, response.output_item.added,
// response.output_text.delta, ..., response.completed). The reply's items (reply_items.h)
// are its output items: the thought a "reasoning" item, the text a "message" with one
// output_text part, each call a "function_call".
#ifndef RINGSERVE_COMMON_OPENAI_RESPONSES_RENDERER_H_
#define RINGSERVE_COMMON_OPENAI_RESPONSES_RENDERER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/openai/generate_renderer.h"
#include "common/openai/openai_response.h"
#include "common/openai/reply_items.h"
#include "ringserve/v1/inference.pb.h"

namespace ringserve::openai {

struct ResponsesMeta {
  std::string id;          // "resp_..."
  int64_t created_at = 0;  // Unix seconds
  std::string model;       // as the client named it (or the served name)
  // ResponsesCall::logprobs: alternatives per output token; nullopt: no logprobs.
  std::optional<int> logprobs;
  // ResponsesCall::settings: the request's settings the object repeats.
  OrderedJson settings = OrderedJson::object();
};

// One request's stream (the Responses API has no n). Thread: one at a time.
class ResponsesRenderer final : public GenerateRenderer, private ReplyItems::Listener {
 public:
  explicit ResponsesRenderer(ResponsesMeta meta);

  // The first call's events begin with response.created and response.in_progress.
  std::string StreamEvents(int request, const ringserve::v1::GenerateResponse& message) override;
  // Success: the open item's done events, then response.completed, or response.incomplete when
  // the reply ran out of tokens. A failure: an "error" event, then response.failed.
  std::string StreamEnd(const absl::Status& error) override;

  void Accumulate(int request, const ringserve::v1::GenerateResponse& message) override;
  // The "response" object.
  std::string Body() const override;

 private:
  // ReplyItems::Listener: each change as the stream's events, appended to events_.
  void Opened(int index) override;
  void Added(int index, const std::string& delta, const OrderedJson& logprobs) override;
  void Closed(int index) override;

  // response.created and response.in_progress, the first time only.
  void StartEvents();
  // One typed event onto events_; sequence numbers count from 0.
  void Event(const char* type, OrderedJson fields);
  // "rs_", "msg_" or "fc_", the response id's suffix and the item's index.
  std::string ItemId(int index) const;
  // `opening`: as output_item.added shows it, before any text.
  OrderedJson ItemJson(int index, const char* status, bool opening) const;
  // The response object; `error` null unless it failed.
  OrderedJson Object(const char* status, OrderedJson error) const;
  OrderedJson Usage() const;

  const ResponsesMeta meta_;
  ReplyItems reply_;
  std::string events_;  // the events of the call in progress
  bool started_ = false;
  int64_t sequence_ = 0;
};

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_RESPONSES_RENDERER_H_
