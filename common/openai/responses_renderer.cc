#include "common/openai/responses_renderer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;
using Kind = ReplyItems::Kind;

constexpr char kResponsePrefix[] = "resp_";

OrderedJson FailureJson(const absl::Status& error) {
  return OrderedJson{{"code", absl::StatusCodeToString(error.code())},
                     {"message", std::string(error.message())}};
}

}  // namespace

ResponsesRenderer::ResponsesRenderer(ResponsesMeta meta)
    : meta_(std::move(meta)), reply_(meta_.logprobs) {}

void ResponsesRenderer::Event(const char* type, OrderedJson fields) {
  OrderedJson event{{"type", type}};
  for (auto it = fields.begin(); it != fields.end(); ++it) event[it.key()] = std::move(it.value());
  event["sequence_number"] = sequence_++;
  absl::StrAppend(&events_, "event: ", type, "\ndata: ", Dump(event), "\n\n");
}

std::string ResponsesRenderer::ItemId(int index) const {
  const Kind kind = reply_.items()[static_cast<size_t>(index)].kind;
  const char* prefix = kind == Kind::kThought ? "rs_" : kind == Kind::kText ? "msg_" : "fc_";
  return absl::StrCat(
      prefix, meta_.id.substr(std::min(meta_.id.size(), sizeof(kResponsePrefix) - 1)), "_", index);
}

OrderedJson ResponsesRenderer::ItemJson(int index, const char* status, bool opening) const {
  const ReplyItems::Item& item = reply_.items()[static_cast<size_t>(index)];
  const std::string text = opening ? std::string() : item.text;
  switch (item.kind) {
    case Kind::kThought: {
      OrderedJson content = OrderedJson::array();
      if (!opening) content.push_back({{"type", "reasoning_text"}, {"text", text}});
      return OrderedJson{{"id", ItemId(index)},
                         {"type", "reasoning"},
                         {"summary", OrderedJson::array()},
                         {"content", std::move(content)},
                         {"encrypted_content", nullptr},
                         {"status", status}};
    }
    case Kind::kText: {
      OrderedJson content = OrderedJson::array();
      if (!opening) {
        OrderedJson part{{"type", "output_text"}, {"text", text}};
        part["annotations"] = OrderedJson::array();
        if (meta_.logprobs.has_value()) part["logprobs"] = item.logprobs;
        content.push_back(std::move(part));
      }
      return OrderedJson{{"id", ItemId(index)},
                         {"type", "message"},
                         {"status", status},
                         {"role", "assistant"},
                         {"content", std::move(content)}};
    }
    case Kind::kCall:
      return OrderedJson{{"id", ItemId(index)},     {"type", "function_call"}, {"status", status},
                         {"call_id", item.call_id}, {"name", item.name},       {"arguments", text}};
  }
  return nullptr;
}

OrderedJson ResponsesRenderer::Usage() const {
  return OrderedJson{{"input_tokens", reply_.input_tokens()},
                     {"input_tokens_details", {{"cached_tokens", reply_.cached_tokens()}}},
                     {"output_tokens", reply_.output_tokens()},
                     {"output_tokens_details", {{"reasoning_tokens", reply_.reasoning_tokens()}}},
                     {"total_tokens", reply_.input_tokens() + reply_.output_tokens()}};
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
  for (size_t i = 0; i < reply_.items().size(); ++i) {
    const ReplyItems::Item& item = reply_.items()[i];
    const char* item_status = "completed";
    if (s == "in_progress" && !item.done) item_status = "in_progress";
    if (s == "failed" || (s == "incomplete" && item.kind == Kind::kText)) {
      item_status = "incomplete";
    }
    output.push_back(ItemJson(static_cast<int>(i), item_status, /*opening=*/false));
  }
  object["output"] = std::move(output);
  object["usage"] = reply_.finished() ? Usage() : OrderedJson(nullptr);
  return object;
}

void ResponsesRenderer::Opened(int index) {
  Event("response.output_item.added",
        {{"output_index", index}, {"item", ItemJson(index, "in_progress", true)}});
  const Kind kind = reply_.items()[static_cast<size_t>(index)].kind;
  if (kind == Kind::kCall) return;
  OrderedJson part = kind == Kind::kText ? OrderedJson{{"type", "output_text"}, {"text", ""}}
                                         : OrderedJson{{"type", "reasoning_text"}, {"text", ""}};
  if (kind == Kind::kText) part["annotations"] = OrderedJson::array();
  Event("response.content_part.added", {{"item_id", ItemId(index)},
                                        {"output_index", index},
                                        {"content_index", 0},
                                        {"part", std::move(part)}});
}

void ResponsesRenderer::Added(int index, const std::string& delta, const OrderedJson& logprobs) {
  const Kind kind = reply_.items()[static_cast<size_t>(index)].kind;
  OrderedJson fields{{"item_id", ItemId(index)}, {"output_index", index}};
  if (kind != Kind::kCall) fields["content_index"] = 0;
  fields["delta"] = delta;
  if (kind == Kind::kText && meta_.logprobs.has_value()) fields["logprobs"] = logprobs;
  Event(kind == Kind::kThought ? "response.reasoning_text.delta"
        : kind == Kind::kText  ? "response.output_text.delta"
                               : "response.function_call_arguments.delta",
        std::move(fields));
}

void ResponsesRenderer::Closed(int index) {
  const ReplyItems::Item& item = reply_.items()[static_cast<size_t>(index)];
  const OrderedJson whole = ItemJson(index, "completed", false);
  const std::string id = ItemId(index);
  switch (item.kind) {
    case Kind::kThought:
      Event("response.reasoning_text.done",
            {{"item_id", id}, {"output_index", index}, {"content_index", 0}, {"text", item.text}});
      Event("response.content_part.done", {{"item_id", id},
                                           {"output_index", index},
                                           {"content_index", 0},
                                           {"part", whole["content"][0]}});
      break;
    case Kind::kText: {
      OrderedJson done{
          {"item_id", id}, {"output_index", index}, {"content_index", 0}, {"text", item.text}};
      if (meta_.logprobs.has_value()) done["logprobs"] = item.logprobs;
      Event("response.output_text.done", std::move(done));
      Event("response.content_part.done", {{"item_id", id},
                                           {"output_index", index},
                                           {"content_index", 0},
                                           {"part", whole["content"][0]}});
      break;
    }
    case Kind::kCall:
      Event("response.function_call_arguments.done", {{"item_id", id},
                                                      {"output_index", index},
                                                      {"name", item.name},
                                                      {"arguments", item.text}});
      break;
  }
  Event("response.output_item.done", {{"output_index", index}, {"item", whole}});
}

void ResponsesRenderer::StartEvents() {
  if (started_) return;
  started_ = true;
  Event("response.created", {{"response", Object("in_progress", nullptr)}});
  Event("response.in_progress", {{"response", Object("in_progress", nullptr)}});
}

std::string ResponsesRenderer::StreamEvents(int /*request*/, const pb::GenerateResponse& message) {
  StartEvents();
  reply_.Take(message, this);
  return std::exchange(events_, std::string());
}

std::string ResponsesRenderer::StreamEnd(const absl::Status& error) {
  StartEvents();
  if (!error.ok()) {
    OrderedJson fields = FailureJson(error);
    fields["param"] = nullptr;
    Event("error", std::move(fields));
    Event("response.failed", {{"response", Object("failed", FailureJson(error))}});
    return std::exchange(events_, std::string());
  }
  reply_.CloseAll(this);
  const bool incomplete = reply_.Incomplete();
  Event(incomplete ? "response.incomplete" : "response.completed",
        {{"response", Object(incomplete ? "incomplete" : "completed", nullptr)}});
  return std::exchange(events_, std::string());
}

void ResponsesRenderer::Accumulate(int /*request*/, const pb::GenerateResponse& message) {
  reply_.Take(message, nullptr);
  // A whole response's items end with its last message.
  if (message.has_final()) reply_.CloseAll(nullptr);
}

std::string ResponsesRenderer::Body() const {
  return Dump(Object(reply_.Incomplete() ? "incomplete" : "completed", nullptr));
}

}  // namespace ringserve::openai
