// A Generate stream rendered as OpenAI's Responses API: a whole "response" object, or its
// stream of typed Server-Sent Events (response.created, response.output_item.added,
// response.output_text.delta, ..., response.completed).
//
// The reply becomes output items in the order the model wrote them: its thought (a
// "reasoning" item, from GenerateResponse.reasoning), its text (a "message" item with one
// output_text part) and each tool call (a "function_call" item). A streamed item opens when its
// first text arrives and is done when another begins or the stream ends. A reply with no output
// at all is one empty message.
#ifndef RINGSERVE_COMMON_OPENAI_RESPONSES_RENDERER_H_
#define RINGSERVE_COMMON_OPENAI_RESPONSES_RENDERER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/openai/generate_renderer.h"
#include "common/openai/openai_response.h"
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
class ResponsesRenderer final : public GenerateRenderer {
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
  enum class Kind { kReasoning, kMessage, kFunctionCall };
  struct Item {
    Kind kind = Kind::kMessage;
    std::string id;
    // The thought, the text, or the call's arguments so far.
    std::string text;
    OrderedJson logprobs = OrderedJson::array();  // a message's output tokens
    std::string call_id;
    std::string name;
    int call_index = -1;         // a call's index among the reply's calls
    std::string held_arguments;  // streamed arguments' partial last character
    bool done = false;
  };

  // Takes one message; appends the stream's events to `events` when it is not null.
  void Take(const ringserve::v1::GenerateResponse& message, std::string* events);
  // response.created and response.in_progress, the first time only.
  void StartEvents(std::string& events);
  // Adds `item` (its id chosen here) after closing the open item.
  Item& Begin(Item item, std::string* events);
  // The open item when it is of `kind`, else a new one.
  Item& Current(Kind kind, std::string* events);
  // The function call item of call `index`, or null.
  Item* CallItem(int index);
  void Close(Item& item, std::string* events);
  void CloseAll(std::string* events);
  // One typed event; sequence numbers count from 0.
  std::string Event(const char* type, OrderedJson fields);
  // `opening`: as output_item.added shows it, before any text.
  OrderedJson ItemJson(const Item& item, const char* status, bool opening) const;
  // The response object; `error` null unless it failed.
  OrderedJson Object(const char* status, OrderedJson error) const;
  OrderedJson Usage() const;
  bool Incomplete() const;

  const ResponsesMeta meta_;
  std::vector<Item> items_;
  // Output tokens' logprobs not yet in a text delta (tokens whose text is still incomplete).
  OrderedJson pending_logprobs_ = OrderedJson::array();
  int whole_calls_ = 0;  // whole calls seen
  bool started_ = false;
  bool finished_ = false;
  ringserve::v1::FinishReason finish_reason_ = ringserve::v1::FINISH_REASON_UNSPECIFIED;
  int64_t sequence_ = 0;
  int64_t input_tokens_ = 0;
  int64_t cached_tokens_ = 0;
  int64_t output_tokens_ = 0;
  int64_t reasoning_tokens_ = 0;
};

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_RESPONSES_RENDERER_H_
