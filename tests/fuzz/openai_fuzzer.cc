// libFuzzer target for the OpenAI API's translation (rs_openai_format): the router's HTTP
// port takes request bodies from anyone, and what a model writes (any bytes, half characters
// included) goes back to clients as JSON. The first input byte picks the mode:
//   0-5: the rest is a body for /v1/completions, /v1/chat/completions, /v1/embeddings,
//        /tokenize, /detokenize or /v1/responses; 7 and 8: for /v1/messages and
//        /v1/messages/count_tokens;
//   6:   the rest scripts a worker's Generate stream (text, thoughts, tool call deltas and
//        whole calls, logprobs with any floats, ids, finals), rendered as chat and completion
//        responses, the Responses API's and the Messages API's (each whole and streamed).
// Properties (a failure aborts, so the fuzzer reports it as a crash):
//   - a body is accepted or refused with INVALID_ARGUMENT, never another code;
//   - an accepted generation has at least one request; a continued response's session id
//     reads back from the response id it makes;
//   - every rendered body and every event's data is JSON (or [DONE]); a typed event's type is
//     its "event:" line, and the Responses API's sequence numbers count from 0 without a gap.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/openai/messages_renderer.h"
#include "common/openai/messages_request.h"
#include "common/openai/openai_request.h"
#include "common/openai/openai_response.h"
#include "common/openai/responses_renderer.h"
#include "common/openai/responses_request.h"
#include "nlohmann/json.hpp"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;
using Parsed = nlohmann::json;

void Require(bool condition, const char* property) {
  if (condition) return;
  std::fprintf(stderr, "openai_fuzzer: property failed: %s\n", property);
  std::abort();
}

void RequireRefusal(const absl::Status& status) {
  Require(status.code() == absl::StatusCode::kInvalidArgument,
          "a refused body is INVALID_ARGUMENT");
}

void ParseBodies(int mode, absl::string_view body) {
  switch (mode) {
    case 0:
    case 1: {
      auto call = mode == 0 ? ParseCompletionRequest(body) : ParseChatRequest(body);
      if (!call.ok()) return RequireRefusal(call.status());
      Require(!call->requests.empty() && call->n >= 1, "a generation has a request");
      return;
    }
    case 2: {
      auto call = ParseEmbeddingRequest(body);
      if (!call.ok()) return RequireRefusal(call.status());
      return;
    }
    case 3: {
      auto call = ParseTokenizeRequest(body);
      if (!call.ok()) return RequireRefusal(call.status());
      return;
    }
    case 4: {
      auto call = ParseDetokenizeRequest(body);
      if (!call.ok()) return RequireRefusal(call.status());
      return;
    }
    case 7: {
      auto call = ParseMessagesRequest(body);
      if (!call.ok()) return RequireRefusal(call.status());
      Require(call->request.has_chat(), "a message runs a chat");
      return;
    }
    case 8: {
      auto call = ParseCountTokensRequest(body);
      if (!call.ok()) return RequireRefusal(call.status());
      return;
    }
    default: {
      auto call = ParseResponsesRequest(body);
      if (!call.ok()) return RequireRefusal(call.status());
      Require(call->request.has_chat(), "a response runs a chat");
      if (!call->previous_session.empty()) {
        auto session = SessionOfResponseId(ResponseIdOfSession(call->previous_session), "previous");
        Require(session.ok() && *session == call->previous_session,
                "a session id reads back from its response id");
      }
      return;
    }
  }
}

// Bytes taken one field at a time; zeros once they run out.
class Script {
 public:
  explicit Script(absl::string_view bytes) : bytes_(bytes) {}
  bool done() const { return at_ >= bytes_.size(); }
  uint8_t Byte() { return at_ < bytes_.size() ? static_cast<uint8_t>(bytes_[at_++]) : 0; }
  std::string Bytes() {
    const size_t n = std::min<size_t>(Byte() % 12, bytes_.size() - std::min(at_, bytes_.size()));
    std::string out(bytes_.substr(at_, n));
    at_ += n;
    return out;
  }
  float Float() {
    uint32_t bits = 0;
    for (int i = 0; i < 4; ++i) bits = (bits << 8) | Byte();
    float value = 0;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
  }

 private:
  absl::string_view bytes_;
  size_t at_ = 0;
};

constexpr int kCompletions = 2;  // n of the chat and completion renderings

// A Generate stream as a worker could send it: completion indices below kCompletions.
std::vector<pb::GenerateResponse> Messages(Script& script) {
  std::vector<pb::GenerateResponse> messages;
  while (!script.done() && messages.size() < 64) {
    pb::GenerateResponse m;
    m.set_index(script.Byte() % kCompletions);
    switch (script.Byte() % 7) {
      case 0:
        m.set_text(script.Bytes());
        m.add_token_ids(script.Byte());
        break;
      case 1:
        m.set_reasoning(script.Bytes());
        m.add_token_ids(script.Byte());
        break;
      case 2: {
        pb::ToolCallDelta* d = m.add_tool_call_deltas();
        d->set_index(script.Byte() % 3);
        if (script.Byte() % 2 == 0) {
          d->set_id("call_" + script.Bytes());
          d->set_name(script.Bytes());
        }
        d->set_arguments(script.Bytes());
        break;
      }
      case 3: {
        pb::ToolCall* c = m.add_tool_calls();
        c->set_id(script.Bytes());
        c->set_name(script.Bytes());
        c->set_arguments(script.Bytes());
        break;
      }
      case 4: {
        m.set_text(script.Bytes());
        for (int i = script.Byte() % 3; i > 0; --i) {
          m.add_token_ids(script.Byte());
          pb::PositionLogprobs* p = m.add_logprobs();
          p->mutable_chosen()->set_token(script.Bytes());
          p->mutable_chosen()->set_logprob(script.Float());
          pb::TokenLogprob* top = p->add_top();
          top->set_token(script.Bytes());
          top->set_logprob(script.Float());
        }
        break;
      }
      case 5:
        for (int i = script.Byte() % 4; i > 0; --i) m.add_prompt_token_ids(script.Byte());
        for (int i = script.Byte() % 3; i > 0; --i) m.add_token_ids(script.Byte());
        break;
      default: {
        pb::GenerateFinal* final = m.mutable_final();
        final->set_finish_reason(static_cast<pb::FinishReason>(script.Byte() % 8));
        final->set_stop_match(script.Bytes());
        final->mutable_usage()->set_prompt_tokens(script.Byte());
        final->mutable_usage()->set_cached_tokens(script.Byte());
        final->mutable_usage()->set_completion_tokens(script.Byte());
        break;
      }
    }
    messages.push_back(std::move(m));
  }
  return messages;
}

void RequireJson(const std::string& text, const char* what) { Require(Parsed::accept(text), what); }

// Each "data: " payload of a stream of Server-Sent Events is JSON or [DONE].
void RequireJsonEvents(const std::string& stream) {
  size_t at = 0;
  while (at < stream.size()) {
    const size_t end = stream.find("\n\n", at);
    Require(end != std::string::npos, "an event ends with a blank line");
    const std::string data = stream.substr(at, end - at);
    Require(data.rfind("data: ", 0) == 0, "an event is one data line");
    const std::string payload = data.substr(6);
    Require(payload == "[DONE]" || Parsed::accept(payload), "an event's data is JSON");
    at = end + 2;
  }
}

// Typed events: "event: TYPE\ndata: JSON" with data.type == TYPE; numbered from `next` unless
// `next` is null.
void RequireTypedEvents(const std::string& stream, int64_t* next) {
  size_t at = 0;
  while (at < stream.size()) {
    const size_t end = stream.find("\n\n", at);
    Require(end != std::string::npos, "an event ends with a blank line");
    const std::string event = stream.substr(at, end - at);
    const size_t newline = event.find('\n');
    Require(event.rfind("event: ", 0) == 0 && newline != std::string::npos,
            "an event names its type");
    const std::string type = event.substr(7, newline - 7);
    Require(event.compare(newline + 1, 6, "data: ") == 0, "an event has data");
    const Parsed data = Parsed::parse(event.substr(newline + 7), nullptr, false);
    Require(!data.is_discarded(), "an event's data is JSON");
    Require(data.value("type", "") == type, "an event's type is its data's");
    if (next != nullptr) {
      Require(data.value("sequence_number", int64_t{-1}) == (*next)++,
              "events are numbered in order");
    }
    at = end + 2;
  }
}

void Render(absl::string_view bytes) {
  Script script(bytes);
  const std::vector<pb::GenerateResponse> messages = Messages(script);
  for (const ApiKind kind : {ApiKind::kChat, ApiKind::kCompletion}) {
    ResponseMeta meta{.kind = kind,
                      .id = std::string("id"),
                      .created = 1,
                      .model = std::string("m"),
                      .n = kCompletions,
                      .logprobs = 2,
                      .echo = {std::string("p\xC3")},
                      .echo_logprobs = false,
                      .token_ids = true,
                      .include_usage = true};
    if (kind == ApiKind::kChat) meta.echo.clear();
    ResponseRenderer whole(meta, 1);
    ResponseRenderer streamed(meta, 1);
    std::string stream;
    for (const pb::GenerateResponse& m : messages) {
      whole.Accumulate(0, m);
      stream += streamed.StreamEvents(0, m);
    }
    stream += streamed.StreamEnd(absl::OkStatus());
    RequireJson(whole.Body(), "a whole response is JSON");
    RequireJsonEvents(stream);
  }
  ResponsesMeta meta{.id = std::string("resp_x"),
                     .created_at = 1,
                     .model = std::string("m"),
                     .logprobs = 1,
                     .settings = OrderedJson{{"store", true}}};
  ResponsesRenderer whole(meta);
  ResponsesRenderer streamed(meta);
  int64_t next = 0;
  for (const pb::GenerateResponse& m : messages) {
    whole.Accumulate(0, m);
    RequireTypedEvents(streamed.StreamEvents(0, m), &next);
  }
  const bool fail = script.Byte() % 2 == 1;
  RequireTypedEvents(
      streamed.StreamEnd(fail ? absl::UnavailableError("lost\xC3") : absl::OkStatus()), &next);
  RequireJson(whole.Body(), "a whole Responses object is JSON");
  MessagesMeta messages_meta{.id = std::string("msg_x"), .model = std::string("m")};
  MessagesRenderer whole_message(messages_meta);
  MessagesRenderer streamed_message(messages_meta);
  for (const pb::GenerateResponse& m : messages) {
    whole_message.Accumulate(0, m);
    RequireTypedEvents(streamed_message.StreamEvents(0, m), nullptr);
  }
  RequireTypedEvents(
      streamed_message.StreamEnd(fail ? absl::UnavailableError("lost") : absl::OkStatus()),
      nullptr);
  RequireJson(whole_message.Body(), "a whole message is JSON");
}

}  // namespace
}  // namespace ringserve::openai

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 9;
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (mode != 6) {
    ringserve::openai::ParseBodies(mode, rest);
  } else {
    ringserve::openai::Render(rest);
  }
  return 0;
}
