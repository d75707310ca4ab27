#include "common/openai/openai_response.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/openai/openai_error.h"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;

OrderedJson ByteArray(const std::string& bytes) {
  OrderedJson array = OrderedJson::array();
  for (const char c : bytes) array.push_back(static_cast<uint8_t>(c));
  return array;
}

OrderedJson ChatCandidate(const pb::TokenLogprob& candidate) {
  return OrderedJson{{"token", candidate.token()},
                     {"logprob", ShortestDouble(candidate.logprob())},
                     {"bytes", ByteArray(candidate.token())}};
}

OrderedJson StopReason(const pb::GenerateFinal& final) {
  if (final.finish_reason() == pb::FINISH_REASON_STOP_STRING) return final.stop_match();
  if (final.finish_reason() == pb::FINISH_REASON_STOP_TOKEN) {
    int64_t id = 0;
    if (absl::SimpleAtoi(final.stop_match(), &id)) return id;
  }
  return nullptr;
}

OrderedJson ToolCallJson(const pb::ToolCall& call, int index) {
  return OrderedJson{{"index", index},
                     {"id", call.id()},
                     {"type", "function"},
                     {"function", {{"name", call.name()}, {"arguments", call.arguments()}}}};
}

}  // namespace

std::string Dump(const OrderedJson& json) {
  // Token texts may hold part of a character: such bytes become U+FFFD (their exact bytes
  // travel in "bytes").
  return json.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
}

OrderedJson ChatLogprob(const pb::PositionLogprobs& position, int top) {
  OrderedJson entry = ChatCandidate(position.chosen());
  OrderedJson alternatives = OrderedJson::array();
  for (int i = 0; i < std::min(top, position.top_size()); ++i) {
    alternatives.push_back(ChatCandidate(position.top(i)));
  }
  entry["top_logprobs"] = std::move(alternatives);
  return entry;
}

double ShortestDouble(float value) {
  // JSON has no infinities: a token the sampler could never pick reports vLLM's floor.
  constexpr double kLogprobFloor = -9999.0;
  if (std::isinf(value) || std::isnan(value)) return kLogprobFloor;
  char buffer[32];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer) - 1, value);
  if (error != std::errc()) return value;
  *end = '\0';
  return std::strtod(buffer, nullptr);
}

const char* FinishReasonName(pb::FinishReason reason) {
  switch (reason) {
    case pb::FINISH_REASON_MAX_TOKENS:
    case pb::FINISH_REASON_CONTEXT_LENGTH:
      return "length";
    case pb::FINISH_REASON_TOOL_CALLS:
      return "tool_calls";
    default:
      return "stop";
  }
}

std::string TakeCompleteUtf8(std::string& pending) {
  // Walk back over at most three continuation bytes to the last character's lead byte.
  size_t end = pending.size();
  size_t back = 0;
  while (back < 3 && back < pending.size() &&
         (static_cast<uint8_t>(pending[pending.size() - 1 - back]) & 0xC0) == 0x80) {
    ++back;
  }
  if (back < pending.size()) {
    const auto lead = static_cast<uint8_t>(pending[pending.size() - 1 - back]);
    const size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (length > back + 1) end = pending.size() - 1 - back;  // the character is incomplete
  }
  std::string complete = pending.substr(0, end);
  pending.erase(0, end);
  return complete;
}

std::string SseEvent(const std::string& data) { return absl::StrCat("data: ", data, "\n\n"); }

ResponseRenderer::ResponseRenderer(ResponseMeta meta, int num_requests)
    : meta_(std::move(meta)), choices_(static_cast<size_t>(num_requests * meta_.n)) {}

int ResponseRenderer::ChoiceIndex(int request, const pb::GenerateResponse& message) const {
  return request * meta_.n + message.index();
}

ResponseRenderer::Choice& ResponseRenderer::ChoiceOf(int request,
                                                     const pb::GenerateResponse& message) {
  return choices_[static_cast<size_t>(ChoiceIndex(request, message))];
}

void ResponseRenderer::CountUsage(int /*request*/, const pb::GenerateResponse& message) {
  if (!message.has_final()) return;
  const pb::Usage& usage = message.final().usage();
  completion_tokens_ += usage.completion_tokens();
  // Every completion of a request reports the same prompt: count it once.
  if (message.index() == 0) {
    prompt_tokens_ += usage.prompt_tokens();
    cached_tokens_ += usage.cached_tokens();
  }
}

void ResponseRenderer::TakeIds(Choice& choice, const pb::GenerateResponse& message) const {
  if (!meta_.token_ids) return;
  choice.prompt_ids.insert(choice.prompt_ids.end(), message.prompt_token_ids().begin(),
                           message.prompt_token_ids().end());
  choice.token_ids.insert(choice.token_ids.end(), message.token_ids().begin(),
                          message.token_ids().end());
}

void ResponseRenderer::SendIds(Choice& choice, OrderedJson& ids_into,
                               OrderedJson& prompt_into) const {
  if (!meta_.token_ids) return;
  if (!choice.prompt_ids_sent) {
    prompt_into["prompt_token_ids"] = std::move(choice.prompt_ids);
    choice.prompt_ids_sent = true;
  }
  ids_into["token_ids"] = std::move(choice.token_ids);
  choice.prompt_ids.clear();
  choice.token_ids.clear();
}

void ResponseRenderer::AddLogprobs(Choice& choice, const pb::GenerateResponse& message,
                                   OrderedJson& into) {
  const int top = meta_.logprobs.value_or(0);
  if (meta_.kind == ApiKind::kChat) {
    if (!into.is_object()) into = OrderedJson{{"content", OrderedJson::array()}};
    for (const pb::PositionLogprobs& position : message.logprobs()) {
      into["content"].push_back(ChatLogprob(position, top));
    }
    return;
  }
  if (!into.is_object()) {
    into = OrderedJson{{"tokens", OrderedJson::array()},
                       {"token_logprobs", OrderedJson::array()},
                       {"top_logprobs", OrderedJson::array()},
                       {"text_offset", OrderedJson::array()}};
  }
  for (const pb::PositionLogprobs& position : message.logprobs()) {
    into["tokens"].push_back(position.chosen().token());
    into["token_logprobs"].push_back(ShortestDouble(position.chosen().logprob()));
    OrderedJson alternatives = OrderedJson::object();
    for (int i = 0; i < std::min(top, position.top_size()); ++i) {
      alternatives[position.top(i).token()] = ShortestDouble(position.top(i).logprob());
    }
    into["top_logprobs"].push_back(std::move(alternatives));
    into["text_offset"].push_back(choice.text_offset);
    choice.text_offset += static_cast<int64_t>(position.chosen().token().size());
  }
}

const std::string* ResponseRenderer::EchoOf(int request) const {
  if (meta_.echo.size() <= static_cast<size_t>(request)) return nullptr;
  return &meta_.echo[static_cast<size_t>(request)];
}

bool ResponseRenderer::EchoReady(Choice& choice, const pb::GenerateResponse& message) const {
  if (!meta_.echo_logprobs) return true;
  choice.prompt_scores.insert(choice.prompt_scores.end(), message.prompt_logprobs().begin(),
                              message.prompt_logprobs().end());
  return message.token_ids_size() > 0 || message.has_final();
}

void ResponseRenderer::AddPromptLogprobs(Choice& choice, const std::string& echo,
                                         OrderedJson& into) {
  if (!into.is_object()) {
    into = OrderedJson{{"tokens", OrderedJson::array()},
                       {"token_logprobs", OrderedJson::array()},
                       {"top_logprobs", OrderedJson::array()},
                       {"text_offset", OrderedJson::array()}};
  }
  int64_t scored_bytes = 0;
  for (const pb::PositionLogprobs& p : choice.prompt_scores) {
    scored_bytes += static_cast<int64_t>(p.chosen().token().size());
  }
  // The scored tokens end where the prompt does. Text before them is the first token, which
  // has nothing before it to be scored by (a model without BOS): it leads with null. Scored
  // text longer than the prompt starts with a SentencePiece dummy-prefix space the prompt
  // lacks: offsets shift back by it, the first clamped at 0.
  int64_t offset = static_cast<int64_t>(echo.size()) - scored_bytes;
  if (offset > 0) {
    into["tokens"].push_back(echo.substr(0, static_cast<size_t>(offset)));
    into["token_logprobs"].push_back(nullptr);
    into["top_logprobs"].push_back(nullptr);
    into["text_offset"].push_back(0);
  }
  const int top = meta_.logprobs.value_or(0);
  for (const pb::PositionLogprobs& p : choice.prompt_scores) {
    into["tokens"].push_back(p.chosen().token());
    into["token_logprobs"].push_back(ShortestDouble(p.chosen().logprob()));
    OrderedJson alternatives = OrderedJson::object();
    for (int i = 0; i < std::min(top, p.top_size()); ++i) {
      alternatives[p.top(i).token()] = ShortestDouble(p.top(i).logprob());
    }
    into["top_logprobs"].push_back(std::move(alternatives));
    into["text_offset"].push_back(std::max<int64_t>(0, offset));
    offset += static_cast<int64_t>(p.chosen().token().size());
  }
  choice.prompt_scores.clear();
  choice.text_offset = static_cast<int64_t>(echo.size());
}

OrderedJson ResponseRenderer::ChunkHead() const {
  const bool chat = meta_.kind == ApiKind::kChat;
  return OrderedJson{{"id", meta_.id},
                     {"object", chat ? "chat.completion.chunk" : "text_completion"},
                     {"created", meta_.created},
                     {"model", meta_.model}};
}

OrderedJson ResponseRenderer::ChoiceUsage(const Choice& choice) {
  return OrderedJson{{"prompt_tokens", choice.prompt_tokens},
                     {"completion_tokens", choice.generated},
                     {"total_tokens", choice.prompt_tokens + choice.generated}};
}

OrderedJson ResponseRenderer::Usage() const {
  return OrderedJson{{"prompt_tokens", prompt_tokens_},
                     {"completion_tokens", completion_tokens_},
                     {"total_tokens", prompt_tokens_ + completion_tokens_},
                     {"prompt_tokens_details", {{"cached_tokens", cached_tokens_}}}};
}

std::string ResponseRenderer::StreamEvents(int request, const pb::GenerateResponse& message) {
  CountUsage(request, message);
  Choice& choice = ChoiceOf(request, message);
  const int index = ChoiceIndex(request, message);
  TakeIds(choice, message);
  if (message.prompt_tokens() > 0) choice.prompt_tokens = message.prompt_tokens();
  choice.generated += message.token_ids_size();
  if (message.has_final()) {
    choice.prompt_tokens = message.final().usage().prompt_tokens();
    choice.generated = message.final().usage().completion_tokens();
  }
  std::string events;
  OrderedJson out = OrderedJson::object();
  // Every generated id goes out with the chunk of its message, text or none.
  bool worth_sending = message.has_final() || (meta_.token_ids && !choice.token_ids.empty());
  if (meta_.kind == ApiKind::kChat) {
    if (!choice.started) {
      choice.started = true;
      OrderedJson first = ChunkHead();
      if (meta_.token_ids) {
        first["prompt_token_ids"] = std::move(choice.prompt_ids);
        choice.prompt_ids.clear();
        choice.prompt_ids_sent = true;
      }
      first["choices"] =
          OrderedJson::array({OrderedJson{{"index", index},
                                          {"delta", {{"role", "assistant"}, {"content", ""}}},
                                          {"logprobs", nullptr},
                                          {"finish_reason", nullptr}}});
      if (meta_.continuous_usage) first["usage"] = ChoiceUsage(choice);
      events += SseEvent(Dump(first));
    }
    OrderedJson delta = OrderedJson::object();
    if (!message.reasoning().empty()) delta["reasoning_content"] = message.reasoning();
    if (!message.text().empty()) delta["content"] = message.text();
    OrderedJson calls = OrderedJson::array();
    for (const pb::ToolCallDelta& d : message.tool_call_deltas()) {
      std::string& held = choice.held_arguments[d.index()];
      held += d.arguments();
      OrderedJson function = OrderedJson::object();
      OrderedJson call{{"index", d.index()}};
      if (!d.id().empty()) {
        call["id"] = d.id();
        call["type"] = "function";
        function["name"] = d.name();
        if (choice.calls_streamed.size() <= static_cast<size_t>(d.index())) {
          choice.calls_streamed.resize(static_cast<size_t>(d.index()) + 1, false);
        }
        choice.calls_streamed[static_cast<size_t>(d.index())] = true;
      }
      function["arguments"] = TakeCompleteUtf8(held);
      call["function"] = std::move(function);
      calls.push_back(std::move(call));
    }
    // Calls that arrive whole without deltas (calls only parsed, under a response_format).
    for (const pb::ToolCall& whole : message.tool_calls()) {
      const int call_index = choice.whole_calls++;
      const bool streamed = static_cast<size_t>(call_index) < choice.calls_streamed.size() &&
                            choice.calls_streamed[static_cast<size_t>(call_index)];
      if (!streamed) calls.push_back(ToolCallJson(whole, call_index));
    }
    if (!calls.empty()) delta["tool_calls"] = std::move(calls);
    worth_sending = worth_sending || !delta.empty() || message.logprobs_size() > 0;
    out = OrderedJson{{"index", index}, {"delta", std::move(delta)}};
  }
  OrderedJson logprobs = nullptr;
  if (meta_.kind == ApiKind::kCompletion) {
    std::string text;
    if (!choice.started) {
      const std::string* echo = EchoOf(request);
      if (echo != nullptr && !EchoReady(choice, message)) return events;
      choice.started = true;
      if (echo != nullptr) {
        text = *echo;
        if (meta_.echo_logprobs) AddPromptLogprobs(choice, *echo, logprobs);
      }
    }
    text += message.text();
    worth_sending =
        worth_sending || !text.empty() || message.logprobs_size() > 0 || logprobs.is_object();
    out = OrderedJson{{"index", index}, {"text", std::move(text)}};
  }
  if (!worth_sending) return events;
  if (meta_.logprobs.has_value() && message.logprobs_size() > 0) {
    AddLogprobs(choice, message, logprobs);
  }
  out["logprobs"] = std::move(logprobs);
  out["finish_reason"] = message.has_final()
                             ? OrderedJson(FinishReasonName(message.final().finish_reason()))
                             : nullptr;
  if (message.has_final()) out["stop_reason"] = StopReason(message.final());
  SendIds(choice, out, out);
  OrderedJson chunk = ChunkHead();
  chunk["choices"] = OrderedJson::array({std::move(out)});
  if (meta_.continuous_usage) chunk["usage"] = ChoiceUsage(choice);
  events += SseEvent(Dump(chunk));
  return events;
}

std::string ResponseRenderer::StreamEnd(const absl::Status& error) {
  std::string events;
  if (!error.ok()) events += SseEvent(ErrorBody(error));
  if (meta_.include_usage && error.ok()) {
    OrderedJson chunk = ChunkHead();
    chunk["choices"] = OrderedJson::array();
    chunk["usage"] = Usage();
    events += SseEvent(Dump(chunk));
  }
  events += SseEvent("[DONE]");
  return events;
}

void ResponseRenderer::Accumulate(int request, const pb::GenerateResponse& message) {
  CountUsage(request, message);
  Choice& choice = ChoiceOf(request, message);
  TakeIds(choice, message);
  if (!choice.started) {
    const std::string* echo = meta_.kind == ApiKind::kCompletion ? EchoOf(request) : nullptr;
    if (echo != nullptr && !EchoReady(choice, message)) return;
    choice.started = true;
    if (echo != nullptr) {
      choice.text = *echo;
      if (meta_.echo_logprobs) AddPromptLogprobs(choice, *echo, choice.logprobs);
    }
  }
  choice.text += message.text();
  choice.reasoning += message.reasoning();
  for (const pb::ToolCall& call : message.tool_calls()) {
    choice.tool_calls.push_back(ToolCallJson(call, static_cast<int>(choice.tool_calls.size())));
    choice.tool_calls.back().erase("index");  // whole calls carry no index
  }
  if (meta_.logprobs.has_value() && message.logprobs_size() > 0) {
    AddLogprobs(choice, message, choice.logprobs);
  }
  if (message.has_final()) {
    choice.finish_reason = FinishReasonName(message.final().finish_reason());
    choice.stop_reason = StopReason(message.final());
  }
}

std::string ResponseRenderer::Body() const {
  const bool chat = meta_.kind == ApiKind::kChat;
  OrderedJson choices = OrderedJson::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = choices_[i];
    OrderedJson logprobs = c.logprobs.is_object() ? c.logprobs : OrderedJson(nullptr);
    if (meta_.logprobs.has_value() && logprobs.is_null()) {
      logprobs = chat ? OrderedJson{{"content", OrderedJson::array()}} : OrderedJson(nullptr);
    }
    OrderedJson choice{{"index", i}};
    if (chat) {
      OrderedJson message{{"role", "assistant"}};
      // OpenAI's clients expect null content beside calls when the reply had no text.
      message["content"] =
          c.text.empty() && !c.tool_calls.empty() ? OrderedJson(nullptr) : OrderedJson(c.text);
      if (!c.reasoning.empty()) message["reasoning_content"] = c.reasoning;
      if (!c.tool_calls.empty()) message["tool_calls"] = c.tool_calls;
      choice["message"] = std::move(message);
    } else {
      choice["text"] = c.text;
    }
    choice["logprobs"] = std::move(logprobs);
    choice["finish_reason"] =
        c.finish_reason.empty() ? OrderedJson(nullptr) : OrderedJson(c.finish_reason);
    choice["stop_reason"] = c.stop_reason;
    if (meta_.token_ids) {
      if (!chat) choice["prompt_token_ids"] = c.prompt_ids;
      choice["token_ids"] = c.token_ids;
    }
    choices.push_back(std::move(choice));
  }
  OrderedJson body{{"id", meta_.id},
                   {"object", chat ? "chat.completion" : "text_completion"},
                   {"created", meta_.created},
                   {"model", meta_.model}};
  // A chat has one prompt: its ids go beside the choices, as vLLM puts them.
  if (chat && meta_.token_ids && !choices_.empty()) {
    body["prompt_token_ids"] = choices_[0].prompt_ids;
  }
  body["choices"] = std::move(choices);
  body["usage"] = Usage();
  return Dump(body);
}

}  // namespace ringserve::openai
