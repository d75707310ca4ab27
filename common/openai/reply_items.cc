#include "common/openai/reply_items.h"

#include <utility>

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;

const OrderedJson& NoLogprobs() {
  static const auto* const none = new OrderedJson(OrderedJson::array());
  return *none;
}

}  // namespace

bool ReplyItems::Incomplete() const {
  return finish_reason_ == pb::FINISH_REASON_MAX_TOKENS ||
         finish_reason_ == pb::FINISH_REASON_CONTEXT_LENGTH;
}

ReplyItems::Item* ReplyItems::CallItem(int call_index) {
  for (Item& item : items_) {
    if (item.kind == Kind::kCall && item.call_index == call_index) return &item;
  }
  return nullptr;
}

ReplyItems::Item& ReplyItems::Begin(Item item, Listener* listener) {
  if (!items_.empty() && !items_.back().done) Close(items_.back(), listener);
  items_.push_back(std::move(item));
  held_.emplace_back();
  if (listener != nullptr) listener->Opened(static_cast<int>(items_.size() - 1));
  return items_.back();
}

ReplyItems::Item& ReplyItems::Current(Kind kind, Listener* listener) {
  if (!items_.empty() && !items_.back().done && items_.back().kind == kind) return items_.back();
  Item item;
  item.kind = kind;
  return Begin(std::move(item), listener);
}

void ReplyItems::Close(Item& item, Listener* listener) {
  item.done = true;
  const int index = IndexOf(item);
  std::string& held = held_[static_cast<size_t>(index)];
  item.text += held;  // a last character the worker left incomplete
  held.clear();
  if (item.kind == Kind::kText) {
    for (OrderedJson& entry : pending_logprobs_) item.logprobs.push_back(std::move(entry));
    pending_logprobs_ = OrderedJson::array();
  }
  if (listener != nullptr) listener->Closed(index);
}

void ReplyItems::CloseAll(Listener* listener) {
  if (items_.empty()) Current(Kind::kText, listener);
  for (Item& item : items_) {
    if (!item.done) Close(item, listener);
  }
}

void ReplyItems::Take(const pb::GenerateResponse& message, Listener* listener) {
  if (!message.reasoning().empty()) {
    // Tokens of the thought: their logprobs are not the text's.
    if (message.text().empty()) reasoning_tokens_ += message.token_ids_size();
    Item& item = Current(Kind::kThought, listener);
    item.text += message.reasoning();
    if (listener != nullptr) listener->Added(IndexOf(item), message.reasoning(), NoLogprobs());
  } else if (logprobs_.has_value()) {
    for (const pb::PositionLogprobs& position : message.logprobs()) {
      pending_logprobs_.push_back(ChatLogprob(position, *logprobs_));
    }
  }
  if (!message.text().empty()) {
    Item& item = Current(Kind::kText, listener);
    item.text += message.text();
    const OrderedJson logprobs = std::move(pending_logprobs_);
    pending_logprobs_ = OrderedJson::array();
    for (const OrderedJson& entry : logprobs) item.logprobs.push_back(entry);
    if (listener != nullptr) listener->Added(IndexOf(item), message.text(), logprobs);
  }
  for (const pb::ToolCallDelta& d : message.tool_call_deltas()) {
    Item* call = CallItem(d.index());
    if (call == nullptr) {
      Item opening;
      opening.kind = Kind::kCall;
      opening.call_id = d.id();
      opening.name = d.name();
      opening.call_index = d.index();
      call = &Begin(std::move(opening), listener);
    }
    std::string& held = held_[static_cast<size_t>(IndexOf(*call))];
    held += d.arguments();
    const std::string complete = TakeCompleteUtf8(held);
    call->text += complete;
    if (listener != nullptr && !complete.empty()) {
      listener->Added(IndexOf(*call), complete, NoLogprobs());
    }
  }
  for (const pb::ToolCall& whole : message.tool_calls()) {
    const int call_index = whole_calls_++;
    Item* call = CallItem(call_index);
    if (call == nullptr) {  // a call that came whole, without deltas
      Item opening;
      opening.kind = Kind::kCall;
      opening.call_id = whole.id();
      opening.name = whole.name();
      opening.call_index = call_index;
      call = &Begin(std::move(opening), listener);
      if (listener != nullptr && !whole.arguments().empty()) {
        listener->Added(IndexOf(*call), whole.arguments(), NoLogprobs());
      }
    }
    call->text = whole.arguments();
    held_[static_cast<size_t>(IndexOf(*call))].clear();
    if (!call->done) Close(*call, listener);
  }
  if (message.has_final()) {
    finished_ = true;
    finish_reason_ = message.final().finish_reason();
    stop_match_ = message.final().stop_match();
    const pb::Usage& usage = message.final().usage();
    input_tokens_ = usage.prompt_tokens();
    cached_tokens_ = usage.cached_tokens();
    output_tokens_ = usage.completion_tokens();
  }
}

}  // namespace ringserve::openai
