#include "common/openai/responses_renderer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;

constexpr char kResponsePrefix[] = "resp_";

OrderedJson ErrorJson(const absl::Status& error) {
  return OrderedJson{{"code", absl::StatusCodeToString(error.code())},
                     {"message", std::string(error.message())}};
}

}  // namespace

ResponsesRenderer::ResponsesRenderer(ResponsesMeta meta) : meta_(std::move(meta)) {}

std::string ResponsesRenderer::Event(const char* type, OrderedJson fields) {
  OrderedJson event{{"type", type}};
  for (auto it = fields.begin(); it != fields.end(); ++it) event[it.key()] = std::move(it.value());
  event["sequence_number"] = sequence_++;
  return absl::StrCat("event: ", type, "\ndata: ", Dump(event), "\n\n");
}

bool ResponsesRenderer::Incomplete() const {
  return finish_reason_ == pb::FINISH_REASON_MAX_TOKENS ||
         finish_reason_ == pb::FINISH_REASON_CONTEXT_LENGTH;
}

OrderedJson ResponsesRenderer::ItemJson(const Item& item, const char* status, bool opening) const {
  const std::string text = opening ? std::string() : item.text;
  switch (item.kind) {
    case Kind::kReasoning: {
      OrderedJson content = OrderedJson::array();
      if (!opening) content.push_back({{"type", "reasoning_text"}, {"text", text}});
      return OrderedJson{{"id", item.id},
                         {"type", "reasoning"},
                         {"summary", OrderedJson::array()},
                         {"content", std::move(content)},
                         {"encrypted_content", nullptr},
                         {"status", status}};
    }
    case Kind::kMessage: {
      OrderedJson content = OrderedJson::array();
      if (!opening) {
        OrderedJson part{{"type", "output_text"}, {"text", text}, {"annotations", {}}};
        part["annotations"] = OrderedJson::array();
        if (meta_.logprobs.has_value()) part["logprobs"] = item.logprobs;
        content.push_back(std::move(part));
      }
      return OrderedJson{{"id", item.id},
                         {"type", "message"},
                         {"status", status},
                         {"role", "assistant"},
                         {"content", std::move(content)}};
    }
    case Kind::kFunctionCall:
      return OrderedJson{{"id", item.id},           {"type", "function_call"}, {"status", status},
                         {"call_id", item.call_id}, {"name", item.name},       {"arguments", text}};
  }
  return nullptr;
}

OrderedJson ResponsesRenderer::Usage() const {
  return OrderedJson{{"input_tokens", input_tokens_},
                     {"input_tokens_details", {{"cached_tokens", cached_tokens_}}},
                     {"output_tokens", output_tokens_},
                     {"output_tokens_details", {{"reasoning_tokens", reasoning_tokens_}}},
                     {"total_tokens", input_tokens_ + output_tokens_}};
}

OrderedJson ResponsesRenderer::Object(const char* status, OrderedJson error) const {
  const std::string s = status;
  OrderedJson object{
      {"id", meta_.id},
      {"object", "response"},
      {"created_at", meta_.created_at},
      {"status", status},
      {"background", false},
      {"error", std::move(error)},
      {"incomplete_details",
       s == "incomplete" ? OrderedJson{{"reason", "max_output_tokens"}} : OrderedJson(nullptr)}};
  for (const auto& [key, value] : meta_.settings.items()) object[key] = value;
  object["model"] = meta_.model;
  OrderedJson output = OrderedJson::array();
  for (const Item& item : items_) {
    const char* item_status = "completed";
    if (s == "in_progress" && !item.done) item_status = "in_progress";
    if (s == "failed" || (s == "incomplete" && item.kind == Kind::kMessage)) {
      item_status = "incomplete";
    }
    output.push_back(ItemJson(item, item_status, /*opening=*/false));
  }
  object["output"] = std::move(output);
  object["usage"] = finished_ ? Usage() : OrderedJson(nullptr);
  return object;
}

ResponsesRenderer::Item* ResponsesRenderer::CallItem(int index) {
  for (Item& item : items_) {
    if (item.kind == Kind::kFunctionCall && item.call_index == index) return &item;
  }
  return nullptr;
}

ResponsesRenderer::Item& ResponsesRenderer::Begin(Item item, std::string* events) {
  if (!items_.empty() && !items_.back().done) Close(items_.back(), events);
  const char* prefix = item.kind == Kind::kReasoning ? "rs_"
                       : item.kind == Kind::kMessage ? "msg_"
                                                     : "fc_";
  item.id =
      absl::StrCat(prefix, meta_.id.substr(std::min(meta_.id.size(), sizeof(kResponsePrefix) - 1)),
                   "_", items_.size());
  items_.push_back(std::move(item));
  Item& added = items_.back();
  if (events != nullptr) {
    const auto index = static_cast<int64_t>(items_.size() - 1);
    *events += Event("response.output_item.added",
                     {{"output_index", index}, {"item", ItemJson(added, "in_progress", true)}});
    if (added.kind == Kind::kMessage) {
      *events +=
          Event("response.content_part.added",
                {{"item_id", added.id},
                 {"output_index", index},
                 {"content_index", 0},
                 {"part",
                  {{"type", "output_text"}, {"text", ""}, {"annotations", OrderedJson::array()}}}});
    } else if (added.kind == Kind::kReasoning) {
      *events += Event("response.content_part.added",
                       {{"item_id", added.id},
                        {"output_index", index},
                        {"content_index", 0},
                        {"part", {{"type", "reasoning_text"}, {"text", ""}}}});
    }
  }
  return added;
}

ResponsesRenderer::Item& ResponsesRenderer::Current(Kind kind, std::string* events) {
  if (!items_.empty() && !items_.back().done && items_.back().kind == kind) return items_.back();
  Item item;
  item.kind = kind;
  return Begin(std::move(item), events);
}

void ResponsesRenderer::Close(Item& item, std::string* events) {
  item.done = true;
  if (item.kind == Kind::kFunctionCall) {
    item.text += item.held_arguments;  // a last character the worker left incomplete
    item.held_arguments.clear();
  }
  if (item.kind == Kind::kMessage) {
    for (OrderedJson& entry : pending_logprobs_) item.logprobs.push_back(std::move(entry));
    pending_logprobs_ = OrderedJson::array();
  }
  if (events == nullptr) return;
  const auto index = static_cast<int64_t>(&item - items_.data());
  const OrderedJson whole = ItemJson(item, "completed", false);
  switch (item.kind) {
    case Kind::kReasoning:
      *events += Event("response.reasoning_text.done", {{"item_id", item.id},
                                                        {"output_index", index},
                                                        {"content_index", 0},
                                                        {"text", item.text}});
      *events += Event("response.content_part.done", {{"item_id", item.id},
                                                      {"output_index", index},
                                                      {"content_index", 0},
                                                      {"part", whole["content"][0]}});
      break;
    case Kind::kMessage: {
      OrderedJson done{
          {"item_id", item.id}, {"output_index", index}, {"content_index", 0}, {"text", item.text}};
      if (meta_.logprobs.has_value()) done["logprobs"] = item.logprobs;
      *events += Event("response.output_text.done", std::move(done));
      *events += Event("response.content_part.done", {{"item_id", item.id},
                                                      {"output_index", index},
                                                      {"content_index", 0},
                                                      {"part", whole["content"][0]}});
      break;
    }
    case Kind::kFunctionCall:
      *events += Event("response.function_call_arguments.done", {{"item_id", item.id},
                                                                 {"output_index", index},
                                                                 {"name", item.name},
                                                                 {"arguments", item.text}});
      break;
  }
  *events += Event("response.output_item.done", {{"output_index", index}, {"item", whole}});
}

void ResponsesRenderer::CloseAll(std::string* events) {
  // A reply of no text (the model ended its turn at once) is still a message, as clients
  // read the reply at output[0].content[0].text.
  if (items_.empty()) Current(Kind::kMessage, events);
  for (Item& item : items_) {
    if (!item.done) Close(item, events);
  }
}

void ResponsesRenderer::StartEvents(std::string& events) {
  if (started_) return;
  started_ = true;
  events += Event("response.created", {{"response", Object("in_progress", nullptr)}});
  events += Event("response.in_progress", {{"response", Object("in_progress", nullptr)}});
}

void ResponsesRenderer::Take(const pb::GenerateResponse& message, std::string* events) {
  if (events != nullptr) StartEvents(*events);
  const auto delta_fields = [&](const Item& item, const std::string& delta) {
    return OrderedJson{{"item_id", item.id},
                       {"output_index", static_cast<int64_t>(&item - items_.data())},
                       {"content_index", 0},
                       {"delta", delta}};
  };
  if (!message.reasoning().empty()) {
    // Tokens of the thought: their logprobs are not the output text's.
    if (message.text().empty()) reasoning_tokens_ += message.token_ids_size();
    Item& item = Current(Kind::kReasoning, events);
    item.text += message.reasoning();
    if (events != nullptr) {
      *events += Event("response.reasoning_text.delta", delta_fields(item, message.reasoning()));
    }
  } else if (meta_.logprobs.has_value()) {
    for (const pb::PositionLogprobs& position : message.logprobs()) {
      pending_logprobs_.push_back(ChatLogprob(position, *meta_.logprobs));
    }
  }
  if (!message.text().empty()) {
    Item& item = Current(Kind::kMessage, events);
    item.text += message.text();
    OrderedJson logprobs = std::move(pending_logprobs_);
    pending_logprobs_ = OrderedJson::array();
    for (const OrderedJson& entry : logprobs) item.logprobs.push_back(entry);
    if (events != nullptr) {
      OrderedJson fields = delta_fields(item, message.text());
      if (meta_.logprobs.has_value()) fields["logprobs"] = std::move(logprobs);
      *events += Event("response.output_text.delta", std::move(fields));
    }
  }
  for (const pb::ToolCallDelta& d : message.tool_call_deltas()) {
    Item* call = CallItem(d.index());
    if (call == nullptr) {
      Item opening;
      opening.kind = Kind::kFunctionCall;
      opening.call_id = d.id();
      opening.name = d.name();
      opening.call_index = d.index();
      call = &Begin(std::move(opening), events);
    }
    call->held_arguments += d.arguments();
    const std::string complete = TakeCompleteUtf8(call->held_arguments);
    call->text += complete;
    if (events != nullptr && !complete.empty()) {
      OrderedJson fields = delta_fields(*call, complete);
      fields.erase("content_index");
      *events += Event("response.function_call_arguments.delta", std::move(fields));
    }
  }
  for (const pb::ToolCall& whole : message.tool_calls()) {
    const int index = whole_calls_++;
    Item* call = CallItem(index);
    if (call == nullptr) {  // a call that came whole, without deltas
      Item opening;
      opening.kind = Kind::kFunctionCall;
      opening.call_id = whole.id();
      opening.name = whole.name();
      opening.call_index = index;
      call = &Begin(std::move(opening), events);
      if (events != nullptr && !whole.arguments().empty()) {
        OrderedJson fields = delta_fields(*call, whole.arguments());
        fields.erase("content_index");
        *events += Event("response.function_call_arguments.delta", std::move(fields));
      }
    }
    call->text = whole.arguments();
    call->held_arguments.clear();
    if (!call->done) Close(*call, events);
  }
  if (message.has_final()) {
    finished_ = true;
    finish_reason_ = message.final().finish_reason();
    const pb::Usage& usage = message.final().usage();
    input_tokens_ = usage.prompt_tokens();
    cached_tokens_ = usage.cached_tokens();
    output_tokens_ = usage.completion_tokens();
    // A whole response's items end with its last message; a stream's with StreamEnd's events.
    if (events == nullptr) CloseAll(nullptr);
  }
}

std::string ResponsesRenderer::StreamEvents(int /*request*/, const pb::GenerateResponse& message) {
  std::string events;
  Take(message, &events);
  return events;
}

std::string ResponsesRenderer::StreamEnd(const absl::Status& error) {
  std::string events;
  StartEvents(events);
  if (!error.ok()) {
    OrderedJson fields = ErrorJson(error);
    fields["param"] = nullptr;
    events += Event("error", std::move(fields));
    events += Event("response.failed", {{"response", Object("failed", ErrorJson(error))}});
    return events;
  }
  CloseAll(&events);
  const char* status = Incomplete() ? "incomplete" : "completed";
  events += Event(Incomplete() ? "response.incomplete" : "response.completed",
                  {{"response", Object(status, nullptr)}});
  return events;
}

void ResponsesRenderer::Accumulate(int /*request*/, const pb::GenerateResponse& message) {
  Take(message, nullptr);
}

std::string ResponsesRenderer::Body() const {
  return Dump(Object(Incomplete() ? "incomplete" : "completed", nullptr));
}

}  // namespace ringserve::openai
