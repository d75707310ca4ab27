#include "tests/fuzz/request_builder.h"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "worker/server/request_conversion.h"

namespace ringserve::fuzz {
namespace {

namespace pb = ringserve::v1;

// Sampler bounds, one ulp either side of them, and the values that break comparisons.
float PickFloat(FuzzedDataProvider& in) {
  using limits = std::numeric_limits<float>;
  static constexpr float kEdges[] = {0.0F,
                                     -0.0F,
                                     0.5F,
                                     1.0F,
                                     0.99999994F,
                                     1.0000001F,
                                     2.0F,
                                     -2.0F,
                                     2.0000002F,
                                     -2.0000002F,
                                     1e-45F,
                                     -1.0F,
                                     100.0F,
                                     -100.0F,
                                     100.00001F,
                                     limits::max(),
                                     limits::lowest(),
                                     limits::infinity(),
                                     -limits::infinity(),
                                     limits::quiet_NaN()};
  switch (in.ConsumeIntegralInRange(0, 2)) {
    case 0:
      return in.PickValueInArray(kEdges);
    case 1:
      return in.ConsumeProbability<float>();
    default:
      return in.ConsumeFloatingPoint<float>();
  }
}

// Half the time in [lo, typical] (valid in every world, or close to a limit), else in
// [lo, hi] (past the largest world's limit), else any int32.
int32_t PickInt(FuzzedDataProvider& in, int32_t lo, int32_t typical, int32_t hi) {
  switch (in.ConsumeIntegralInRange(0, 3)) {
    case 0:
    case 1:
      return in.ConsumeIntegralInRange(lo, typical);
    case 2:
      return in.ConsumeIntegralInRange(lo, hi);
    default:
      return in.ConsumeIntegral<int32_t>();
  }
}

// How many of a repeated field: mostly a few, sometimes up to one past its limit.
int PickCount(FuzzedDataProvider& in, int typical, int hi) {
  return in.ConsumeIntegralInRange(0, in.ConsumeBool() ? typical : hi);
}

// Raw bytes, or the same bytes read as Latin-1 and written as UTF-8, so that most text is
// valid and reaches the tokenizer.
std::string PickText(FuzzedDataProvider& in, size_t max_bytes) {
  const bool as_utf8 = in.ConsumeBool();
  std::string raw = in.ConsumeRandomLengthString(max_bytes);
  if (!as_utf8) return raw;
  std::string text;
  for (const char ch : raw) {
    const auto byte = static_cast<unsigned char>(ch);
    if (byte < 0x80) {
      text.push_back(ch);
    } else {
      text.push_back(static_cast<char>(0xC0 | (byte >> 6)));
      text.push_back(static_cast<char>(0x80 | (byte & 0x3F)));
    }
  }
  return text;
}

// Empty, short, or exactly at / one past `limit` bytes, perhaps with a fork suffix.
std::string PickId(FuzzedDataProvider& in, size_t limit) {
  switch (in.ConsumeIntegralInRange(0, 3)) {
    case 0:
      return "";
    case 1:
      return in.ConsumeRandomLengthString(32);
    case 2:
      return in.ConsumeRandomLengthString(32) + "#f" +
             std::to_string(in.ConsumeIntegral<uint8_t>());
    default:
      return std::string(limit + in.ConsumeIntegralInRange<size_t>(0, 1), 'k');
  }
}

// A chat of a few messages in any roles (tool results and calls among them), with tools
// whose names and schemas are valid or not, any tool_choice and thinking switch.
void BuildChat(FuzzedDataProvider& in, pb::Chat* chat) {
  static constexpr const char* kRoles[] = {"system", "user", "assistant", "tool", "bot", ""};
  static const std::string kNames[] = {"f", "get_weather", "", "a b", std::string(65, 'n')};
  static constexpr const char* kSchemas[] = {
      "",
      R"({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})",
      R"({"type": "object", "properties": {"s": {"$ref": "#/$defs/s"}}, "$defs": {"s":
          {"type": "string", "maxLength": 3}}})",
      "[]",
      R"({"uniqueItems": true})",
      R"({"type": "object", "additionalProperties": true})"};
  static constexpr const char* kArguments[] = {"{}", R"({"a": 1})", "[1]", "{"};
  static constexpr const char* kCallIds[] = {"", "abcDEF123", "call_1", "abcDEF12_"};
  const int num_messages = PickCount(in, 4, 9);
  for (int i = 0; i < num_messages && in.remaining_bytes() > 0; ++i) {
    pb::ChatMessage* m = chat->add_messages();
    m->set_role(in.PickValueInArray(kRoles));
    m->set_content(PickText(in, 64));
    if (in.ConsumeBool()) m->set_tool_call_id(in.PickValueInArray(kCallIds));
    const int num_calls = in.ConsumeIntegralInRange(0, in.ConsumeBool() ? 0 : 2);
    for (int c = 0; c < num_calls; ++c) {
      pb::ToolCall* call = m->add_tool_calls();
      call->set_name(in.PickValueInArray(kNames));
      call->set_id(in.PickValueInArray(kCallIds));
      call->set_arguments(in.ConsumeBool() ? std::string(in.PickValueInArray(kArguments))
                                           : PickText(in, 32));
    }
  }
  const int num_tools = PickCount(in, 3, 129);
  for (int i = 0; i < num_tools; ++i) {
    pb::Tool* tool = chat->add_tools();
    tool->set_name(in.PickValueInArray(kNames));
    tool->set_description(PickText(in, 16));
    tool->set_parameters(in.ConsumeBool() ? std::string(in.PickValueInArray(kSchemas))
                                          : PickText(in, 64));
  }
  chat->mutable_tool_choice()->set_mode(
      static_cast<pb::ToolChoice::Mode>(in.ConsumeIntegralInRange(0, 3)));
  if (in.ConsumeBool()) chat->mutable_tool_choice()->set_name(in.PickValueInArray(kNames));
  if (in.ConsumeBool()) chat->set_enable_thinking(in.ConsumeBool());
  if (in.ConsumeBool()) chat->set_parallel_tool_calls(in.ConsumeBool());
  chat->set_continue_final_message(in.ConsumeBool());
}

void BuildInput(FuzzedDataProvider& in, pb::GenerateRequest* r) {
  switch (in.ConsumeIntegralInRange(0, 8)) {
    case 0:
    case 1:
    case 2:
      r->set_text(PickText(in, 2048));
      break;
    case 3:
    case 4:
    case 5: {
      // Up to the tiny model's context (2048) and past it; ids valid in every world
      // (< 64) half the time.
      pb::TokenIds* tokens = r->mutable_tokens();
      const int n = PickCount(in, 24, 2100);
      for (int i = 0; i < n && in.remaining_bytes() > 0; ++i) {
        tokens->add_ids(PickInt(in, -1, 63, 1100));
      }
      break;
    }
    case 6:
      break;  // no input: valid only with append
    case 7:
      BuildChat(in, r->mutable_chat());
      break;
    default:
      // One byte over the API's limit (the fuzzer's -max_len cannot reach it).
      r->set_text(std::string(server::kMaxTextBytes + 1, 'a'));
      break;
  }
}

void BuildSampling(FuzzedDataProvider& in, pb::SamplingParams* s) {
  if (in.ConsumeBool()) s->set_temperature(PickFloat(in));
  if (in.ConsumeBool()) s->set_top_k(PickInt(in, -1, 100, 100000));
  if (in.ConsumeBool()) s->set_top_p(PickFloat(in));
  if (in.ConsumeBool()) s->set_min_p(PickFloat(in));
  if (in.ConsumeBool()) s->set_repetition_penalty(PickFloat(in));
  if (in.ConsumeBool()) s->set_presence_penalty(PickFloat(in));
  if (in.ConsumeBool()) s->set_frequency_penalty(PickFloat(in));
  if (in.ConsumeBool()) s->set_seed(in.ConsumeIntegral<uint64_t>());
  // A few biases, or one past the limit; ids and values in and out of range.
  const int num_biases = PickCount(in, 3, 1025);
  for (int i = 0; i < num_biases; ++i) {
    (*s->mutable_logit_bias())[PickInt(in, -1, 600, 1 << 20)] = PickFloat(in);
  }
}

void BuildStop(FuzzedDataProvider& in, pb::StopCriteria* s) {
  if (in.ConsumeBool()) s->set_max_tokens(PickInt(in, -1, 24, 2100));
  if (in.ConsumeBool()) s->set_min_tokens(PickInt(in, -1, 24, 2100));
  const int num_strings = PickCount(in, 3, 17);
  for (int i = 0; i < num_strings; ++i) {
    if (in.ConsumeIntegralInRange(0, 7) == 0) {
      s->add_stop(std::string(in.ConsumeIntegralInRange(255, 257), 's'));
    } else {
      s->add_stop(PickText(in, 16));
    }
  }
  const int num_ids = PickCount(in, 3, 65);
  for (int i = 0; i < num_ids; ++i) s->add_stop_token_ids(PickInt(in, -1, 63, 1100));
  s->set_ignore_eos(in.ConsumeBool());
  s->set_include_stop_str_in_output(in.ConsumeBool());
}

// Any format, with a schema or a regex of fuzzed text (mostly malformed: the compilers'
// refusals must come back as INVALID_ARGUMENT through the request's conversion).
void BuildResponseFormat(FuzzedDataProvider& in, pb::ResponseFormat* f) {
  switch (in.ConsumeIntegralInRange(0, 4)) {
    case 0:
      f->mutable_json_object();
      break;
    case 1:
      f->mutable_json_schema()->set_schema(PickText(in, 256));
      break;
    case 2:
      f->set_regex(PickText(in, 128));
      break;
    case 3:  // none, empty, repeated, escaped and malformed choices
      for (int i = PickCount(in, 3, 4); i > 0; --i) {
        f->mutable_choice()->add_choices(PickText(in, 24));
      }
      break;
    default:
      break;  // no format set: INVALID_ARGUMENT
  }
}

}  // namespace

pb::GenerateRequest BuildRequest(std::string_view bytes) {
  FuzzedDataProvider in(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  pb::GenerateRequest r;
  r.set_request_id(PickId(in, server::kMaxRequestIdBytes));
  r.set_session_id(PickId(in, server::kMaxSessionIdBytes));
  r.set_append(in.ConsumeBool());
  if (in.ConsumeBool()) r.set_expected_history_tokens(PickInt(in, -1, 64, 3000));
  if (in.ConsumeBool()) BuildSampling(in, r.mutable_sampling());
  if (in.ConsumeBool()) BuildStop(in, r.mutable_stop());
  r.set_logprobs(PickInt(in, -1, 21, 21));
  r.set_priority(in.ConsumeIntegral<int32_t>());
  if (in.ConsumeBool()) BuildResponseFormat(in, r.mutable_response_format());
  if (in.ConsumeBool()) r.set_truncate_prompt_tokens(PickInt(in, -2, 40, 5000));
  BuildInput(in, &r);  // last: the text takes what is left
  return r;
}

}  // namespace ringserve::fuzz
