#include "common/openai/messages_renderer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/openai/openai_error.h"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;
using Kind = ReplyItems::Kind;

// A call's arguments as the object tool_use.input holds (the worker hands over only calls
// whose arguments are an object; anything else reads as an empty one).
OrderedJson InputOf(const std::string& arguments) {
  OrderedJson input = OrderedJson::parse(arguments, nullptr, /*allow_exceptions=*/false);
  return input.is_object() ? input : OrderedJson::object();
}

}  // namespace

const char* StopReasonName(pb::FinishReason reason) {
  switch (reason) {
    case pb::FINISH_REASON_MAX_TOKENS:
    case pb::FINISH_REASON_CONTEXT_LENGTH:
      return "max_tokens";
    case pb::FINISH_REASON_STOP_STRING:
      return "stop_sequence";
    case pb::FINISH_REASON_TOOL_CALLS:
      return "tool_use";
    default:
      return "end_turn";
  }
}

MessagesRenderer::MessagesRenderer(MessagesMeta meta)
    : meta_(std::move(meta)), reply_(std::nullopt) {}

void MessagesRenderer::Event(const char* type, OrderedJson fields) {
  OrderedJson event{{"type", type}};
  for (auto it = fields.begin(); it != fields.end(); ++it) event[it.key()] = std::move(it.value());
  absl::StrAppend(&events_, "event: ", type, "\ndata: ", Dump(event), "\n\n");
}

OrderedJson MessagesRenderer::Block(int index, bool opening) const {
  const ReplyItems::Item& item = reply_.items()[static_cast<size_t>(index)];
  const std::string text = opening ? std::string() : item.text;
  switch (item.kind) {
    case Kind::kThought:
      return OrderedJson{{"type", "thinking"}, {"thinking", text}, {"signature", ""}};
    case Kind::kText:
      return OrderedJson{{"type", "text"}, {"text", text}};
    case Kind::kCall:
      return OrderedJson{{"type", "tool_use"},
                         {"id", item.call_id},
                         {"name", item.name},
                         {"input", opening ? OrderedJson::object() : InputOf(item.text)}};
  }
  return nullptr;
}

OrderedJson MessagesRenderer::Usage() const {
  if (!reply_.finished()) {  // message_start's: the context as the first token told it
    return OrderedJson{{"input_tokens", announced_input_tokens_},
                       {"cache_creation_input_tokens", 0},
                       {"cache_read_input_tokens", 0},
                       {"output_tokens", 0}};
  }
  // Anthropic counts cached input apart: input_tokens are those computed.
  return OrderedJson{{"input_tokens", reply_.input_tokens() - reply_.cached_tokens()},
                     {"cache_creation_input_tokens", 0},
                     {"cache_read_input_tokens", reply_.cached_tokens()},
                     {"output_tokens", reply_.output_tokens()}};
}

OrderedJson MessagesRenderer::Object(bool ended) const {
  OrderedJson content = OrderedJson::array();
  if (ended) {
    for (size_t i = 0; i < reply_.items().size(); ++i) {
      content.push_back(Block(static_cast<int>(i), /*opening=*/false));
    }
  }
  const bool stopped_by_string = ended && reply_.finish_reason() == pb::FINISH_REASON_STOP_STRING;
  return OrderedJson{
      {"id", meta_.id},
      {"type", "message"},
      {"role", "assistant"},
      {"model", meta_.model},
      {"content", std::move(content)},
      {"stop_reason",
       ended ? OrderedJson(StopReasonName(reply_.finish_reason())) : OrderedJson(nullptr)},
      {"stop_sequence", stopped_by_string ? OrderedJson(reply_.stop_match()) : nullptr},
      {"usage", Usage()}};
}

void MessagesRenderer::Opened(int index) {
  Event("content_block_start", {{"index", index}, {"content_block", Block(index, true)}});
}

void MessagesRenderer::Added(int index, const std::string& delta, const OrderedJson& /*logprobs*/) {
  OrderedJson change;
  switch (reply_.items()[static_cast<size_t>(index)].kind) {
    case Kind::kThought:
      change = {{"type", "thinking_delta"}, {"thinking", delta}};
      break;
    case Kind::kText:
      change = {{"type", "text_delta"}, {"text", delta}};
      break;
    case Kind::kCall:
      change = {{"type", "input_json_delta"}, {"partial_json", delta}};
      break;
  }
  Event("content_block_delta", {{"index", index}, {"delta", std::move(change)}});
}

void MessagesRenderer::Closed(int index) { Event("content_block_stop", {{"index", index}}); }

std::string MessagesRenderer::StreamEvents(int /*request*/, const pb::GenerateResponse& message) {
  if (!started_) {
    started_ = true;
    announced_input_tokens_ = message.prompt_tokens();
    Event("message_start", {{"message", Object(/*ended=*/false)}});
  }
  reply_.Take(message, this);
  return std::exchange(events_, std::string());
}

std::string MessagesRenderer::StreamEnd(const absl::Status& error) {
  if (!started_) {
    started_ = true;
    Event("message_start", {{"message", Object(/*ended=*/false)}});
  }
  if (!error.ok()) {
    OrderedJson body = OrderedJson::parse(AnthropicErrorBody(error));
    Event("error", {{"error", std::move(body["error"])}});
    return std::exchange(events_, std::string());
  }
  reply_.CloseAll(this);
  const OrderedJson whole = Object(/*ended=*/true);
  Event("message_delta",
        {{"delta",
          {{"stop_reason", whole["stop_reason"]}, {"stop_sequence", whole["stop_sequence"]}}},
         {"usage", Usage()}});
  Event("message_stop", OrderedJson::object());
  return std::exchange(events_, std::string());
}

void MessagesRenderer::Accumulate(int /*request*/, const pb::GenerateResponse& message) {
  reply_.Take(message, nullptr);
  if (message.has_final()) reply_.CloseAll(nullptr);
}

std::string MessagesRenderer::Body() const { return Dump(Object(/*ended=*/true)); }

std::string MessagesRenderer::ErrorJson(const absl::Status& error) const {
  return AnthropicErrorBody(error);
}

}  // namespace ringserve::openai
