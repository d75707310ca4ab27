#include "worker/server/request_conversion.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/grammar/regex.h"
#include "worker/model/lora_adapter.h"
#include "worker/server/chat_replies.h"
#include "worker/server/tool_requests.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::server {
namespace {

namespace pb = ringserve::v1;

absl::Status Invalid(std::string_view field, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(field), ": ", std::string(why)));
}

uint64_t RandomSeed() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

pb::FinishReason ToProto(engine::FinishReason reason) {
  switch (reason) {
    case engine::FinishReason::kEos:
      return pb::FINISH_REASON_EOS;
    case engine::FinishReason::kMaxTokens:
      return pb::FINISH_REASON_MAX_TOKENS;
    case engine::FinishReason::kStopString:
      return pb::FINISH_REASON_STOP_STRING;
    case engine::FinishReason::kStopToken:
      return pb::FINISH_REASON_STOP_TOKEN;
    case engine::FinishReason::kContextLength:
      return pb::FINISH_REASON_CONTEXT_LENGTH;
    case engine::FinishReason::kResponseComplete:
      return pb::FINISH_REASON_RESPONSE_COMPLETE;
  }
  return pb::FINISH_REASON_UNSPECIFIED;
}

absl::Status CheckSessionIdLength(const std::string& session_id) {
  if (session_id.size() > kMaxSessionIdBytes) {
    return Invalid("session_id", absl::StrCat("longer than ", kMaxSessionIdBytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DetokenizeIdsError(const ringserve::v1::DetokenizeRequest& request,
                                const tokenizer::Tokenizer* tokenizer) {
  if (tokenizer == nullptr) return absl::FailedPreconditionError("this model has no tokenizer");
  if (request.token_ids_size() > kMaxDetokenizeIds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token_ids: ", request.token_ids_size(), " ids is over the limit of ", kMaxDetokenizeIds));
  }
  for (int i = 0; i < request.token_ids_size(); ++i) {
    const int32_t id = request.token_ids(i);
    if (id < 0 || id >= tokenizer->vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat("token_ids[", i, "]: ", id,
                                                     " is outside the vocabulary [0, ",
                                                     tokenizer->vocab_size(), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckExistingSessionId(const std::string& session_id) {
  if (session_id.empty()) return Invalid("session_id", "empty; name the session to act on");
  return CheckSessionIdLength(session_id);
}

namespace {

using grammar::GrammarOr;

// A response format given as text (a schema, a regex, a grammar): UTF-8, compiled (or found
// in `cache` under `kind`), its errors naming the field.
GrammarOr CompileFormat(std::string_view field, const std::string& text, std::string_view kind,
                        GrammarOr (*compile)(std::string_view), grammar::GrammarCache* cache) {
  if (!tokenizer::IsValidUtf8(text)) return Invalid(field, "not valid UTF-8");
  return grammar::CompileCached(cache, grammar::GrammarKey(kind).Add(text).key(), [&] {
    GrammarOr grammar = compile(text);
    if (!grammar.ok()) return GrammarOr(Invalid(field, std::string(grammar.status().message())));
    return grammar;
  });
}

// A thinking model's reply to a response format it thinks before: the thought's close, a
// little whitespace, then the value (`value`, a JSON grammar).
GrammarOr AfterThought(std::shared_ptr<const grammar::Grammar> value) {
  const grammar::Grammar::JsonRule rules[] = {{"value", std::move(value)}};
  return grammar::Grammar::FromGbnf("root ::= \"</think>\" [ \\t\\r\\n]{0,8} value\n", rules);
}

// A choice format as the regex that matches each choice literally: (?:a|b|...).
absl::StatusOr<std::string> ChoicePattern(const pb::ChoiceFormat& choice) {
  constexpr std::string_view kField = "response_format.choice.choices";
  for (int i = 0; i < choice.choices_size(); ++i) {
    if (!tokenizer::IsValidUtf8(choice.choices(i))) {
      return Invalid(kField, absl::StrCat("choice ", i, " is not valid UTF-8"));
    }
  }
  const std::vector<std::string> choices(choice.choices().begin(), choice.choices().end());
  absl::StatusOr<std::string> pattern = grammar::ChoicePattern(choices);
  if (!pattern.ok()) return Invalid(kField, std::string(pattern.status().message()));
  return pattern;
}

// truncate_prompt_tokens: keeps the input's last N tokens.
absl::Status TruncatePrompt(const pb::GenerateRequest& request, const ModelLimits& limits,
                            engine::JobRequest* job) {
  constexpr std::string_view kField = "truncate_prompt_tokens";
  if (job->append) {
    return Invalid(kField,
                   "a session's history cannot lose its start; send the whole context without "
                   "append");
  }
  int64_t keep = request.truncate_prompt_tokens();
  if (keep == -1) {
    const int64_t room = request.stop().has_max_tokens() ? request.stop().max_tokens() : 1;
    keep = std::max<int64_t>(1, limits.context_length - std::max<int64_t>(1, room));
  } else if (keep < 1) {
    return Invalid(kField, absl::StrCat("must be >= 1, or -1 (got ", keep, ")"));
  }
  const auto size = static_cast<int64_t>(job->tokens.size());
  if (size > keep) {
    job->tokens.erase(job->tokens.begin(), job->tokens.begin() + (size - keep));
    job->truncated_tokens = static_cast<int32_t>(size - keep);
  }
  return absl::OkStatus();
}

GrammarOr ToResponseFormat(const pb::ResponseFormat& format, grammar::GrammarCache* cache) {
  switch (format.format_case()) {
    case pb::ResponseFormat::kJsonObject:
      return grammar::Grammar::AnyObject();
    case pb::ResponseFormat::kJsonSchema: {
      const std::string& schema = format.json_schema().schema();
      constexpr std::string_view kField = "response_format.json_schema.schema";
      if (schema.size() > kMaxSchemaBytes) {
        return Invalid(
            kField, absl::StrCat(schema.size(), " bytes is over the limit of ", kMaxSchemaBytes));
      }
      return CompileFormat(kField, schema, "json_schema", &grammar::Grammar::FromSchema, cache);
    }
    case pb::ResponseFormat::kRegex:
      return CompileFormat("response_format.regex", format.regex(), "regex",
                           &grammar::Grammar::FromRegex, cache);
    case pb::ResponseFormat::kGrammar:
      return CompileFormat("response_format.grammar", format.grammar(), "gbnf",
                           &grammar::Grammar::FromGbnf, cache);
    case pb::ResponseFormat::kChoice: {
      RS_ASSIGN_OR_RETURN(const std::string pattern, ChoicePattern(format.choice()));
      return CompileFormat("response_format.choice", pattern, "regex", &grammar::Grammar::FromRegex,
                           cache);
    }
    case pb::ResponseFormat::FORMAT_NOT_SET:
      break;
  }
  return Invalid("response_format", "set json_object, json_schema, regex, grammar or choice");
}

}  // namespace

absl::StatusOr<engine::JobRequest> ToJobRequest(const pb::GenerateRequest& request,
                                                const tokenizer::Tokenizer* tokenizer,
                                                const ModelLimits& limits) {
  engine::JobRequest job;
  if (request.request_id().size() > kMaxRequestIdBytes) {
    return Invalid("request_id", absl::StrCat("longer than ", kMaxRequestIdBytes, " bytes"));
  }
  job.request_id = request.request_id();
  if (absl::Status s = CheckSessionIdLength(request.session_id()); !s.ok()) return s;
  job.session_id = request.session_id();
  job.append = request.append();
  if (job.append && job.session_id.empty()) return Invalid("append", "needs a session_id");
  if (request.has_expected_history_tokens()) {
    if (request.expected_history_tokens() < 0) {
      return Invalid("expected_history_tokens",
                     absl::StrCat("must be >= 0 (got ", request.expected_history_tokens(), ")"));
    }
    job.expected_history_tokens = request.expected_history_tokens();
  }

  ToolFormat tool_format;             // what tool_choice holds the reply to
  bool format_after_thought = false;  // a thinking model thinks before the format's value
  std::optional<int32_t> tool_stop;
  switch (request.input_case()) {
    case pb::GenerateRequest::kText: {
      const std::string& text = request.text();
      if (text.size() > kMaxTextBytes) {
        return Invalid("text",
                       absl::StrCat(text.size(), " bytes is over the limit of ", kMaxTextBytes));
      }
      if (!tokenizer::IsValidUtf8(text)) return Invalid("text", "not valid UTF-8");
      if (tokenizer == nullptr) {
        return Invalid("text", "this model has no tokenizer; send token ids");
      }
      tokenizer::EncodeOptions options;
      if (job.append) options.add_bos = false;
      job.tokens = tokenizer->Encode(text, options);
      break;
    }
    case pb::GenerateRequest::kTokens:
      job.tokens.assign(request.tokens().ids().begin(), request.tokens().ids().end());
      for (int32_t id : job.tokens) {
        if (id < 0 || id >= limits.vocab_size) {
          return Invalid("tokens", absl::StrCat("id ", id, " is outside the vocabulary [0, ",
                                                limits.vocab_size, ")"));
        }
      }
      break;
    case pb::GenerateRequest::kChat: {
      if (tokenizer == nullptr) {
        return Invalid("chat", "this model has no tokenizer; send token ids");
      }
      std::vector<tokenizer::ChatMessage> messages;
      size_t bytes = 0;
      for (int i = 0; i < request.chat().messages_size(); ++i) {
        const pb::ChatMessage& m = request.chat().messages(i);
        bytes += m.content().size();
        for (const pb::ToolCall& call : m.tool_calls()) bytes += call.arguments().size();
        if (!tokenizer::IsValidUtf8(m.content())) {
          return Invalid(absl::StrCat("chat.messages[", i, "].content"), "not valid UTF-8");
        }
        messages.push_back({m.role(), m.content(), MessageToolCalls(m), m.tool_call_id()});
      }
      if (bytes > kMaxTextBytes) {
        return Invalid(
            "chat", absl::StrCat(bytes, " bytes of content is over the limit of ", kMaxTextBytes));
      }
      const bool continues = request.chat().continue_final_message();
      if (continues && (request.has_response_format() ||
                        request.chat().tool_choice().mode() == pb::ToolChoice::MODE_REQUIRED)) {
        return Invalid("chat.continue_final_message",
                       absl::StrCat("a continued reply cannot be held to ",
                                    request.has_response_format() ? "a response_format"
                                                                  : "tool_choice MODE_REQUIRED",
                                    ", whose constraint binds from the reply's first token"));
      }
      RS_ASSIGN_OR_RETURN(const std::vector<tokenizer::ChatTool> tools,
                          OfferedTools(request.chat()));
      const bool thought_first =
          tokenizer::ThinkingOf(*tokenizer, limits.chat_format) != tokenizer::Thinking::kNone &&
          ReplyMayThink(request);
      // A constraint that binds after the thought needs the thought written: open it.
      RS_ASSIGN_OR_RETURN(job.tokens,
                          tokenizer::EncodeChat(*tokenizer, limits.chat_format, messages,
                                                {.start = !job.append,
                                                 .default_system = limits.default_system_prompt,
                                                 .tools = tools,
                                                 .think = ReplyMayThink(request),
                                                 .open_thought = ThoughtBeforeConstraint(request),
                                                 .continue_final = continues}));
      RS_ASSIGN_OR_RETURN(tool_format,
                          ToolChoiceFormat(request.chat(), tools, *tokenizer, limits.chat_format,
                                           thought_first, limits.grammars));
      format_after_thought = thought_first && request.has_response_format();
      job.tokens.insert(job.tokens.end(), tool_format.prompt_suffix.begin(),
                        tool_format.prompt_suffix.end());
      job.spelled_control_ids = tool_format.spelled_markers;
      // Magistral's thought tags, for ReplyThoughts to split the thought out of the text.
      if (const auto thought = tokenizer::MistralThoughtMarkersOf(*tokenizer, limits.chat_format)) {
        job.spelled_control_ids.push_back(thought->open);
        job.spelled_control_ids.push_back(thought->close);
      }
      if (!tools.empty()) tool_stop = tokenizer::ToolCallStopId(*tokenizer, limits.chat_format);
      break;
    }
    case pb::GenerateRequest::INPUT_NOT_SET:
      if (!job.append) return Invalid("input", "set text or tokens");
      break;
  }
  if (request.has_truncate_prompt_tokens()) {
    RS_RETURN_IF_ERROR(TruncatePrompt(request, limits, &job));
  }
  if (static_cast<int64_t>(job.tokens.size()) >= limits.context_length) {
    return Invalid("input", absl::StrCat(job.tokens.size(), " tokens do not fit the context of ",
                                         limits.context_length, " with room to generate"));
  }

  const pb::SamplingParams& s = request.sampling();
  engine::SamplingParams& p = job.sampling;
  if (s.has_temperature()) p.temperature = s.temperature();
  p.top_k = s.top_k();
  if (s.has_top_p()) p.top_p = s.top_p();
  p.min_p = s.min_p();
  if (s.has_repetition_penalty()) p.repetition_penalty = s.repetition_penalty();
  p.presence_penalty = s.presence_penalty();
  p.frequency_penalty = s.frequency_penalty();
  p.seed = s.has_seed() ? s.seed() : RandomSeed();
  // Sorted by token: a map's iteration order is unspecified, and the entries' order should
  // not depend on how the request was encoded.
  p.logit_bias.assign(s.logit_bias().begin(), s.logit_bias().end());
  std::sort(p.logit_bias.begin(), p.logit_bias.end());
  if (request.logprobs() < 0 || request.logprobs() > 20) {
    return Invalid("logprobs", absl::StrCat("must be in [0, 20] (got ", request.logprobs(), ")"));
  }
  p.num_logprobs = request.logprobs();
  if (absl::Status valid = engine::ValidateSamplingParams(p); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("sampling.", valid.message()));
  }

  const pb::StopCriteria& stop = request.stop();
  if (stop.has_max_tokens()) {
    if (stop.max_tokens() < 0) {
      return Invalid("stop.max_tokens", absl::StrCat("must be >= 0 (got ", stop.max_tokens(), ")"));
    }
    if (stop.max_tokens() >= limits.context_length) {
      return Invalid("stop.max_tokens",
                     absl::StrCat(stop.max_tokens(), " is beyond the context of ",
                                  limits.context_length, " tokens"));
    }
    job.max_tokens = stop.max_tokens();
  }
  for (const std::string& s_bytes : stop.stop()) {
    if (!tokenizer::IsValidUtf8(s_bytes)) return Invalid("stop.stop", "not valid UTF-8");
    job.stop_strings.push_back(s_bytes);
  }
  job.include_stop_string = stop.include_stop_str_in_output();
  if (stop.stop_token_ids_size() > engine::kMaxRequestStopTokenIds) {
    return Invalid("stop.stop_token_ids",
                   absl::StrCat(stop.stop_token_ids_size(), " ids is over the limit of ",
                                engine::kMaxRequestStopTokenIds));
  }
  job.stop_token_ids.assign(stop.stop_token_ids().begin(), stop.stop_token_ids().end());
  job.ignore_eos = stop.ignore_eos();
  if (request.has_chat() && !job.ignore_eos) {
    for (const std::optional<int32_t> end :
         {tokenizer::ChatStopId(*tokenizer, limits.chat_format), tool_stop}) {
      if (end.has_value() && std::find(job.stop_token_ids.begin(), job.stop_token_ids.end(),
                                       *end) == job.stop_token_ids.end()) {
        job.stop_token_ids.push_back(*end);
      }
    }
  }
  if (stop.min_tokens() < 0 ||
      (job.max_tokens.has_value() && stop.min_tokens() > *job.max_tokens)) {
    return Invalid("stop.min_tokens",
                   absl::StrCat("must be in [0, max_tokens] (got ", stop.min_tokens(), ")"));
  }
  job.min_tokens = stop.min_tokens();
  job.priority = request.priority();
  if (request.adapter().size() > model::kMaxAdapterNameBytes) {
    return Invalid("adapter", absl::StrCat("longer than ", model::kMaxAdapterNameBytes, " bytes"));
  }
  job.adapter = request.adapter();  // the generator resolves it (NOT_FOUND when not loaded)
  if (request.n() < 0 || request.n() > kMaxCompletions) {
    return Invalid("n",
                   absl::StrCat("must be in [1, ", kMaxCompletions, "] (got ", request.n(), ")"));
  }
  if (request.n() > 1 && !request.session_id().empty()) {
    return Invalid("n",
                   "several completions cannot all continue one session; leave session_id "
                   "empty, or Fork the session and continue each fork");
  }
  if (request.has_prompt_logprobs()) {
    if (request.prompt_logprobs() < 0 || request.prompt_logprobs() > 20) {
      return Invalid("prompt_logprobs",
                     absl::StrCat("must be in [0, 20] (got ", request.prompt_logprobs(), ")"));
    }
    job.prompt_logprobs = request.prompt_logprobs();
  }
  if (request.has_response_format()) {
    // Under a response format the reply is its value, not a call (MODE_AUTO's calls are
    // then unconstrained).
    if (request.chat().tool_choice().mode() == pb::ToolChoice::MODE_REQUIRED) {
      return Invalid("response_format", "a reply that must call tools has the calls' format");
    }
    if (format_after_thought && !request.response_format().has_json_object() &&
        !request.response_format().has_json_schema()) {
      return Invalid("chat.enable_thinking",
                     "a thought before a regex, grammar or choice format is not supported; use a "
                     "JSON "
                     "format, or set enable_thinking false");
    }
    RS_ASSIGN_OR_RETURN(job.response_format,
                        ToResponseFormat(request.response_format(), limits.grammars));
    if (format_after_thought) {
      RS_ASSIGN_OR_RETURN(job.response_format, AfterThought(std::move(job.response_format)));
      job.format_trigger = grammar::Trigger{.text = "</think>", .once = true};
    }
  } else if (tool_format.grammar != nullptr) {
    job.response_format = std::move(tool_format.grammar);
    job.format_trigger = std::move(tool_format.trigger);
  }
  return job;
}

absl::StatusOr<std::vector<int32_t>> ChatPromptTokens(const pb::Chat& chat, bool append,
                                                      const tokenizer::Tokenizer* tokenizer,
                                                      ModelLimits limits) {
  pb::GenerateRequest request;
  *request.mutable_chat() = chat;
  if (append) {
    request.set_append(true);
    request.set_session_id("tokenize");  // append needs a session id; none is looked up
  }
  limits.context_length = std::numeric_limits<int32_t>::max();
  RS_ASSIGN_OR_RETURN(engine::JobRequest job, ToJobRequest(request, tokenizer, limits));
  return std::move(job.tokens);
}

namespace {

void FillCandidate(int32_t id, float logprob, const tokenizer::Tokenizer* tokenizer,
                   pb::TokenLogprob* candidate) {
  candidate->set_token_id(id);
  candidate->set_logprob(logprob);
  if (tokenizer == nullptr) return;
  std::string* text = candidate->mutable_token();
  if (tokenizer->IsSpecial(id)) {
    const std::string_view piece = tokenizer->Piece(id);
    text->assign(piece.data(), piece.size());
  } else {
    tokenizer->AppendTokenBytes(id, /*previous=*/-1, text);
  }
}

void FillPosition(const engine::GeneratedToken& t, const tokenizer::Tokenizer* tokenizer,
                  pb::PositionLogprobs* lp) {
  FillCandidate(t.id, t.logprob, tokenizer, lp->mutable_chosen());
  for (const auto& [id, logprob] : t.top_logprobs) {
    FillCandidate(id, logprob, tokenizer, lp->add_top());
  }
}

}  // namespace

int32_t NumCompletions(const pb::GenerateRequest& request) { return std::max(1, request.n()); }

std::vector<engine::JobRequest> CompletionJobs(const engine::JobRequest& job, int32_t n) {
  std::vector<engine::JobRequest> jobs(static_cast<size_t>(n), job);
  for (int32_t i = 1; i < n; ++i) {
    engine::JobRequest& copy = jobs[static_cast<size_t>(i)];
    copy.sampling.seed = job.sampling.seed + static_cast<uint64_t>(i);  // wraps
    copy.prompt_logprobs.reset();
  }
  return jobs;
}

void FillResponse(const engine::JobEvent& event, bool with_logprobs,
                  const tokenizer::Tokenizer* tokenizer, pb::GenerateResponse* response) {
  for (const engine::GeneratedToken& t : event.tokens) {
    response->add_token_ids(t.id);
    if (with_logprobs) FillPosition(t, tokenizer, response->add_logprobs());
  }
  response->set_text(event.text);
  response->set_prompt_tokens(event.prompt_tokens);
}

void FillPromptLogprobs(std::span<const engine::GeneratedToken> scored,
                        const tokenizer::Tokenizer* tokenizer, pb::GenerateResponse* response) {
  for (const engine::GeneratedToken& t : scored) {
    FillPosition(t, tokenizer, response->add_prompt_logprobs());
  }
}

void FillFinal(const engine::JobResult& result, const engine::JobRequest& request,
               const std::string& request_id, const std::string& worker_id,
               pb::GenerateFinal* final) {
  final->set_finish_reason(ToProto(result.finish_reason));
  final->set_stop_match(result.stop_match);
  final->set_seed(request.sampling.seed);
  final->set_request_id(request_id);
  final->set_history_tokens(result.history_tokens);
  pb::Usage* usage = final->mutable_usage();
  usage->set_prompt_tokens(result.usage.prompt_tokens);
  usage->set_cached_tokens(result.usage.cached_tokens);
  usage->set_completion_tokens(result.usage.completion_tokens);
  usage->set_queue_time_us(absl::ToInt64Microseconds(result.usage.queue_time));
  usage->set_time_to_first_token_us(absl::ToInt64Microseconds(result.usage.time_to_first_token));
  usage->set_total_time_us(absl::ToInt64Microseconds(result.usage.total_time));
  usage->set_worker_id(worker_id);
  usage->set_truncated_tokens(request.truncated_tokens);
}

}  // namespace ringserve::server
