// libFuzzer target for the validation of untrusted requests, worker side and router side.
// The first input byte picks what the rest is:
//   0: a binary ringserve.v1.GenerateRequest, as gRPC hands it to the worker;
//   1: the same in protobuf text format (readable seeds; mutations act on whole fields);
//   2: bytes that drive a structured builder (request_builder.h), which reaches every
//      field with values at and around its limits without keeping a wire format intact;
//   3: a router --workers spec, a newline, then a session id: WorkerSource::Parse, a ring
//      over the parsed workers, and where the session and its forks land.
// Each request takes the worker's two validation steps (GenerateReactor::Begin):
// ToJobRequest, then Generator::Submit, in six worlds: no tokenizer; the built-in tiny
// model's SentencePiece vocabulary at its own limits; a byte-level BPE fixture under a
// padded vocabulary and a 16-token context; a byte-level vocabulary with ChatML's markers
// and a template that thinks first (chat, tools, thoughts); one with Mistral's tokenizer v3
// markers (tools, calls and results by control token); one with DeepSeek R1's markers as
// user-defined tokens and a thought the prompt opens. The generators are drained, so Submit
// validates and then answers UNAVAILABLE without queueing anything.
// Properties (a failure aborts, so the fuzzer reports it as a crash):
//   - every refusal is INVALID_ARGUMENT with a message that starts with a field's name;
//   - a chat that must call tools has the calls' format and no trigger; one that offers no
//     tools (or MODE_NONE) has no trigger;
//   - an accepted request has ids in the vocabulary, fits the context with room to
//     generate, has max_tokens in [0, context), sampling parameters in their documented
//     ranges, the request's own values carried over; one Submit accepts also obeys the
//     limits inference.proto documents for stop strings and stop ids;
//   - a session id's routing key is its prefix up to '#', and its forks hash alike;
//   - a parsed --workers list is sorted, unique, host:port with ports in [1, 65535], and
//     the ring built over it gives every key each worker once as an owner.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"
#include "ringserve/v1/inference.pb.h"
#include "router/endpoint.h"
#include "router/ring.h"
#include "router/session_key.h"
#include "router/worker_source.h"
#include "tests/fuzz/request_builder.h"
#include "tests/unit/tokenizer/chat_vocabulary.h"
#include "tests/unit/tokenizer/json_fixtures.h"
#include "worker/engine/fake_model_runner.h"
#include "worker/engine/generator.h"
#include "worker/engine/sampler.h"
#include "worker/grammar/grammar_cache.h"
#include "worker/model/tiny_model.h"
#include "worker/server/request_conversion.h"
#include "worker/tokenizer/tokenizer.h"
#include "worker/tokenizer/tokenizer_json.h"
#include "worker/tokenizer/tool_calls.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::fuzz {
namespace {

namespace pb = ringserve::v1;

// inference.proto's documented limits that the generator enforces.
constexpr size_t kMaxStopStrings = 16;
constexpr size_t kMaxStopStringBytes = 256;
constexpr size_t kMaxStopTokenIds = 64;

void Require(bool condition, const char* property) {
  if (condition) return;
  std::fprintf(stderr, "request_fuzzer: property failed: %s\n", property);
  std::abort();
}

// One worker's view: its tokenizer (or none) and a drained generator with its limits.
struct World {
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::unique_ptr<engine::Generator> generator;
  server::ModelLimits limits;
  // `limits` with a small grammar cache, which must answer as compiling each time does.
  std::unique_ptr<grammar::GrammarCache> grammars =
      std::make_unique<grammar::GrammarCache>(4, size_t{64} << 10);
  server::ModelLimits cached_limits;
};

std::unique_ptr<World> MakeWorld(std::unique_ptr<tokenizer::Tokenizer> tok, int32_t vocab_size,
                                 int32_t context_tokens,
                                 tokenizer::ChatFormat chat = tokenizer::ChatFormat::kChatMl) {
  auto world = std::make_unique<World>();
  world->tokenizer = std::move(tok);
  engine::FakeModelRunnerOptions runner;
  runner.vocab_size = vocab_size;
  runner.max_context_tokens = context_tokens;
  // The rows a worker keeps for scoring prompts, so prompt_logprobs requests pass Submit.
  runner.max_sampled_rows = engine::SampledRowsFor({}, runner.max_seqs, runner.max_batch_tokens);
  auto generator = engine::Generator::Create(std::make_unique<engine::FakeModelRunner>(runner),
                                             world->tokenizer.get(), {});
  Require(generator.ok(), "generator builds");
  world->generator = *std::move(generator);
  Require(world->generator->Drain(absl::ZeroDuration()), "an idle generator drains at once");
  // What GenerateReactor::Begin passes. A chat format whose markers the vocabulary lacks
  // (--chat-format refuses one at start; the conversion must still say so cleanly).
  world->limits = {world->generator->vocab_size(), world->generator->max_context_tokens(),
                   world->tokenizer != nullptr ? chat : tokenizer::ChatFormat::kNone};
  world->cached_limits = world->limits;
  world->cached_limits.grammars = world->grammars.get();
  return world;
}

std::unique_ptr<tokenizer::Tokenizer> MakeTokenizer(absl::StatusOr<tokenizer::Vocabulary> vocab) {
  Require(vocab.ok(), "fixture vocabulary parses");
  auto tok = tokenizer::Tokenizer::Create(*std::move(vocab));
  Require(tok.ok(), "fixture tokenizer builds");
  return *std::move(tok);
}

// Built once and never destroyed: the engine threads idle until the process exits.
const std::vector<std::unique_ptr<World>>& Worlds() {
  static const auto* worlds = [] {
    auto* list = new std::vector<std::unique_ptr<World>>;
    list->push_back(MakeWorld(nullptr, 64, 256));
    const model::ModelConfig tiny = model::TinyModelConfig();
    list->push_back(
        MakeWorld(MakeTokenizer(model::TinyVocabulary()), tiny.vocab_size, tiny.max_seq_len));
    auto byte_level = MakeTokenizer(tokenizer::ParseTokenizerJson(
        tokenizer::testing::ByteLevelFixture().dump(), "byte_level.json"));
    const int32_t padded_vocab = byte_level->vocab_size() + 7;
    list->push_back(MakeWorld(std::move(byte_level), padded_vocab, 16));
    auto chat = tokenizer::testing::ChatTokenizer(
        /*llama3=*/true, "<|im_start|> <think> {% if enable_thinking is false %}{% endif %}");
    const int32_t chat_vocab = chat->vocab_size();
    list->push_back(MakeWorld(std::move(chat), chat_vocab, 4096));
    auto mistral = tokenizer::testing::MistralTokenizer();  // tool calls by control token
    const int32_t mistral_vocab = mistral->vocab_size();
    list->push_back(
        MakeWorld(std::move(mistral), mistral_vocab, 4096, tokenizer::ChatFormat::kMistral));
    auto v11 = tokenizer::testing::MistralTokenizer(/*v11=*/true);  // calls by name
    const int32_t v11_vocab = v11->vocab_size();
    list->push_back(MakeWorld(std::move(v11), v11_vocab, 4096, tokenizer::ChatFormat::kMistral));
    auto deepseek = tokenizer::testing::DeepSeekTokenizer("<｜Assistant｜><think>\n");
    const int32_t deepseek_vocab = deepseek->vocab_size();
    list->push_back(
        MakeWorld(std::move(deepseek), deepseek_vocab, 4096, tokenizer::ChatFormat::kDeepSeek));
    // Zephyr's text markers on a SentencePiece vocabulary.
    list->push_back(MakeWorld(MakeTokenizer(model::TinyVocabulary()), tiny.vocab_size,
                              tiny.max_seq_len, tokenizer::ChatFormat::kZephyr));
    return list;
  }();
  return *worlds;
}

// Debian's Abseil has its own string_view type.
std::string_view Message(const absl::Status& status) {
  return {status.message().data(), status.message().size()};
}

// True when `message` starts with one of `fields` followed by ':', ' ' or '.'.
bool NamesField(std::string_view message, std::initializer_list<std::string_view> fields) {
  for (std::string_view field : fields) {
    if (message.size() > field.size() && message.starts_with(field)) {
      const char next = message[field.size()];
      if (next == ':' || next == ' ' || next == '.') return true;
    }
  }
  return false;
}

void CheckConversionError(const absl::Status& status, const pb::GenerateRequest& request) {
  std::string_view message = Message(status);
  if (status.code() == absl::StatusCode::kFailedPrecondition) {
    // The one FAILED_PRECONDITION: a chat the model cannot render.
    Require(request.has_chat() && message.find("chat format") != std::string_view::npos,
            "ToJobRequest: FAILED_PRECONDITION only for a chat without a chat format");
    return;
  }
  Require(status.code() == absl::StatusCode::kInvalidArgument, "ToJobRequest: INVALID_ARGUMENT");
  if (message.starts_with("sampling.")) {
    message.remove_prefix(9);
    Require(NamesField(message,
                       {"temperature", "top_k", "top_p", "min_p", "repetition_penalty",
                        "presence_penalty", "frequency_penalty", "num_logprobs", "logit_bias"}),
            "ToJobRequest: sampling error names a field");
    return;
  }
  Require(
      NamesField(message, {"request_id", "session_id", "append", "text", "tokens", "chat", "input",
                           "logprobs", "prompt_logprobs", "n", "stop.max_tokens", "stop.min_tokens",
                           "stop.stop_token_ids", "stop.stop", "expected_history_tokens",
                           "response_format", "truncate_prompt_tokens"}),
      "ToJobRequest: error names a field");
}

void CheckSampling(const pb::SamplingParams& s, const engine::SamplingParams& p, int32_t logprobs) {
  Require(engine::ValidateSamplingParams(p).ok(), "accepted sampling parameters are valid");
  Require(p.temperature >= 0 && std::isfinite(p.temperature), "temperature finite, >= 0");
  Require(p.top_k >= 0, "top_k >= 0");
  Require(p.top_p > 0 && p.top_p <= 1, "top_p in (0, 1]");
  Require(p.min_p >= 0 && p.min_p <= 1, "min_p in [0, 1]");
  Require(p.repetition_penalty > 0 && std::isfinite(p.repetition_penalty),
          "repetition_penalty finite, > 0");
  Require(p.presence_penalty >= -2 && p.presence_penalty <= 2, "presence in [-2, 2]");
  Require(p.frequency_penalty >= -2 && p.frequency_penalty <= 2, "frequency in [-2, 2]");
  Require(p.num_logprobs == logprobs && logprobs >= 0 && logprobs <= 20, "logprobs in [0, 20]");
  Require(p.temperature == (s.has_temperature() ? s.temperature() : 1.0F), "temperature kept");
  Require(p.top_p == (s.has_top_p() ? s.top_p() : 1.0F), "top_p kept");
  Require(p.top_k == s.top_k() && p.min_p == s.min_p(), "top_k, min_p kept");
  Require(!s.has_seed() || p.seed == s.seed(), "a given seed is kept");
  Require(p.logit_bias.size() == s.logit_bias().size(), "every logit bias kept");
  for (size_t i = 0; i < p.logit_bias.size(); ++i) {
    const auto& [token, bias] = p.logit_bias[i];
    Require(i == 0 || p.logit_bias[i - 1].first < token, "logit biases sorted by token");
    Require(s.logit_bias().contains(token) && s.logit_bias().at(token) == bias,
            "each logit bias is the request's");
    Require(std::fabs(bias) <= 100, "logit bias in [-100, 100]");
  }
}

// What ToJobRequest promises for a request it accepts.
void CheckConverted(const pb::GenerateRequest& r, const engine::JobRequest& job, const World& w) {
  const auto context = static_cast<size_t>(w.limits.context_length);
  for (int32_t id : job.tokens) {
    Require(id >= 0 && id < w.limits.vocab_size, "input ids in the vocabulary");
  }
  Require(job.tokens.size() < context, "input leaves room to generate");
  Require(r.input_case() != pb::GenerateRequest::kText || w.tokenizer != nullptr,
          "text needs a tokenizer");
  if (r.input_case() == pb::GenerateRequest::kTokens) {
    // As given, or its last tokens under truncate_prompt_tokens.
    const int dropped = job.truncated_tokens;
    Require(dropped >= 0 && dropped <= r.tokens().ids_size() &&
                std::equal(job.tokens.begin(), job.tokens.end(), r.tokens().ids().begin() + dropped,
                           r.tokens().ids().end()),
            "token input used as given, or its last tokens");
  }
  Require(job.truncated_tokens == 0 ||
              (r.has_truncate_prompt_tokens() && !job.append &&
               (r.truncate_prompt_tokens() == -1 ||
                job.tokens.size() == static_cast<size_t>(r.truncate_prompt_tokens()))),
          "only truncate_prompt_tokens drops input, down to its N");
  Require(r.input_case() != pb::GenerateRequest::INPUT_NOT_SET || job.append,
          "no input only with append");
  Require(!job.append || !job.session_id.empty(), "append has a session");
  Require(job.request_id == r.request_id() && job.request_id.size() <= server::kMaxRequestIdBytes,
          "request_id kept, within its limit");
  Require(job.session_id == r.session_id() && job.session_id.size() <= server::kMaxSessionIdBytes,
          "session_id kept, within its limit");
  Require(!job.max_tokens.has_value() ||
              (*job.max_tokens >= 0 && static_cast<size_t>(*job.max_tokens) < context),
          "max_tokens in [0, context)");
  Require(job.max_tokens.has_value() == r.stop().has_max_tokens(), "max_tokens kept");
  CheckSampling(r.sampling(), job.sampling, r.logprobs());
  Require(job.prompt_logprobs.has_value() == r.has_prompt_logprobs() &&
              (!job.prompt_logprobs || (*job.prompt_logprobs == r.prompt_logprobs() &&
                                        *job.prompt_logprobs >= 0 && *job.prompt_logprobs <= 20)),
          "prompt_logprobs kept, in [0, 20]");
  Require(static_cast<int>(job.stop_strings.size()) == r.stop().stop_size(), "stop strings kept");
  for (const std::string& s : job.stop_strings) {
    Require(tokenizer::IsValidUtf8(s), "stop strings are UTF-8");
  }
  // A chat also stops at its format's end of turn (and Llama 3.x with tools at <|eom_id|>).
  const auto given = static_cast<size_t>(r.stop().stop_token_ids_size());
  Require(job.stop_token_ids.size() == given ||
              (r.has_chat() && job.stop_token_ids.size() <= given + 2),
          "stop ids kept");
  Require(std::equal(r.stop().stop_token_ids().begin(), r.stop().stop_token_ids().end(),
                     job.stop_token_ids.begin()),
          "the request's stop ids come first");
  Require(job.priority == r.priority() && job.ignore_eos == r.stop().ignore_eos() &&
              job.include_stop_string == r.stop().include_stop_str_in_output(),
          "priority, ignore_eos, include_stop_str_in_output kept");
  Require(job.min_tokens == r.stop().min_tokens() && job.min_tokens >= 0 &&
              (!job.max_tokens.has_value() || job.min_tokens <= *job.max_tokens),
          "min_tokens kept, in [0, max_tokens]");
  Require(job.expected_history_tokens.has_value() == r.has_expected_history_tokens(),
          "expected_history_tokens kept");
  const pb::ToolChoice& choice = r.chat().tool_choice();
  const bool mistral = w.limits.chat_format == tokenizer::ChatFormat::kMistral;
  const bool v11 = mistral && tokenizer::MistralToolMarkersOf(*w.tokenizer)->args.has_value();
  const bool offers_tools = r.has_chat() && r.chat().tools_size() > 0 &&
                            choice.mode() != pb::ToolChoice::MODE_NONE &&
                            !r.chat().continue_final_message();
  Require(!job.spelled_control_ids.empty() == (v11 && offers_tools),
          "a v11 reply spells its call markers where it may call tools");
  if (r.has_chat() && r.chat().continue_final_message()) {
    Require(job.response_format == nullptr && !job.format_trigger.has_value() &&
                choice.mode() != pb::ToolChoice::MODE_REQUIRED,
            "a continued reply is held to no format");
  }
  if (r.has_chat() && choice.mode() == pb::ToolChoice::MODE_REQUIRED) {
    // (Bound after the thought when the request asks for one.)
    Require(job.response_format != nullptr &&
                (!job.format_trigger.has_value() ||
                 (job.format_trigger->text == "</think>" && r.chat().enable_thinking()) ||
                 (v11 && job.format_trigger->token == tokenizer::testing::kArgs)),
            "a chat that must call tools has the calls' format");
    const int32_t opened =
        v11 && !choice.name().empty() ? tokenizer::testing::kArgs : tokenizer::testing::kToolCalls;
    Require(mistral == (job.tokens.back() == opened),
            "a mistral prompt that must call tools ends with [TOOL_CALLS] (v11 named: [ARGS])");
  }
  const bool after_thought = job.format_trigger.has_value() &&
                             job.format_trigger->text == "</think>" && r.has_response_format();
  if (after_thought) {
    Require(r.chat().has_enable_thinking() && r.chat().enable_thinking() &&
                (r.response_format().has_json_object() || r.response_format().has_json_schema()),
            "a format binds after the thought only when asked, and only a JSON one");
  } else if (r.chat().tools_size() == 0 || choice.mode() == pb::ToolChoice::MODE_NONE) {
    Require(!job.format_trigger.has_value(), "no tools offered: no trigger");
  } else if (choice.mode() == pb::ToolChoice::MODE_AUTO && !r.has_response_format() &&
             job.format_trigger.has_value()) {
    // (A call grammar that does not compile leaves calls parsed only, without a trigger.)
    Require(job.format_trigger->token.has_value() == mistral, "mistral's calls open by token");
    Require(job.format_trigger->once == ((mistral && !v11) || (r.chat().has_parallel_tool_calls() &&
                                                               !r.chat().parallel_tool_calls())),
            "parallel_tool_calls false (or mistral's one array) binds the call once");
  }
}

// Submit on a drained generator: UNAVAILABLE once everything validated, else a refusal.
void CheckSubmitted(const absl::StatusOr<engine::JobHandle>& handle, const engine::JobRequest& job,
                    const World& w) {
  Require(!handle.ok(), "a drained generator queues nothing");
  const absl::Status& status = handle.status();
  if (status.code() != absl::StatusCode::kUnavailable) {
    Require(status.code() == absl::StatusCode::kInvalidArgument, "Submit: INVALID_ARGUMENT");
    Require(NamesField(Message(status),
                       {"input", "tokens", "stop.max_tokens", "stop.min_tokens", "stop.stop",
                        "stop.stop_token_ids", "append", "expected_history_tokens",
                        "sampling.logit_bias", "response_format"}),
            "Submit: error names a field");
    return;
  }
  Require(!job.tokens.empty() || job.append, "a new context has tokens");
  Require(job.append || !job.max_tokens.has_value() ||
              job.tokens.size() + static_cast<size_t>(*job.max_tokens) <=
                  static_cast<size_t>(w.limits.context_length),
          "input + max_tokens fit the context");
  Require(job.stop_strings.size() <= kMaxStopStrings, "at most 16 stop strings");
  for (const std::string& s : job.stop_strings) {
    Require(!s.empty() && s.size() <= kMaxStopStringBytes, "stop strings 1..256 bytes");
  }
  Require(job.stop_strings.empty() || w.tokenizer != nullptr, "stop strings need a tokenizer");
  Require(job.stop_token_ids.size() <= kMaxStopTokenIds, "at most 64 stop ids");
  for (int32_t id : job.stop_token_ids) {
    Require(id >= 0 && id < w.limits.vocab_size, "stop ids in the vocabulary");
  }
}

// The router's view of a session id: its ring key and where its forks land.
void CheckSessionKey(std::string_view session_id) {
  const std::string_view key = router::RoutingKey(session_id);
  Require(session_id.starts_with(key), "routing key is a prefix");
  Require(key.find('#') == std::string_view::npos, "routing key has no '#'");
  Require(key.size() == session_id.size() || session_id[key.size()] == '#',
          "routing key ends at the first '#'");
  Require(router::SessionHash(session_id) == router::SessionHash(std::string(key) + "#f1"),
          "forks hash with their parent");
}

// A conversion whose grammars may come from the cache answers as one that compiles them.
void CheckCachedConversion(const absl::StatusOr<engine::JobRequest>& compiled,
                           const absl::StatusOr<engine::JobRequest>& cached) {
  Require(compiled.status() == cached.status(), "the grammar cache answers as a compile does");
  if (!compiled.ok()) return;
  Require(compiled->tokens == cached->tokens &&
              (compiled->response_format == nullptr) == (cached->response_format == nullptr) &&
              compiled->format_trigger.has_value() == cached->format_trigger.has_value(),
          "the grammar cache converts as a compile does");
}

void CheckRequest(const pb::GenerateRequest& request) {
  CheckSessionKey(request.session_id());
  for (const auto& world : Worlds()) {
    absl::StatusOr<engine::JobRequest> job =
        server::ToJobRequest(request, world->tokenizer.get(), world->limits);
    CheckCachedConversion(
        job, server::ToJobRequest(request, world->tokenizer.get(), world->cached_limits));
    if (!job.ok()) {
      CheckConversionError(job.status(), request);
      continue;
    }
    CheckConverted(request, *job, *world);
    CheckSubmitted(world->generator->Submit(*job), *job, *world);
  }
}

// Entries of a parsed --workers list, then a small ring over them.
void CheckWorkers(std::string_view spec, std::string_view session_id) {
  absl::StatusOr<router::WorkerSource> source = router::WorkerSource::Parse(std::string(spec));
  if (!source.ok()) {
    Require(source.status().code() == absl::StatusCode::kInvalidArgument &&
                Message(source.status()).starts_with("--workers: "),
            "WorkerSource::Parse: INVALID_ARGUMENT naming --workers");
    return;
  }
  if (source->is_dns()) return;  // resolving would query DNS
  absl::StatusOr<std::vector<std::string>> addresses = source->Resolve();
  Require(addresses.ok() && !addresses->empty(), "a static list resolves to itself");
  Require(std::adjacent_find(addresses->begin(), addresses->end(), std::greater_equal<>()) ==
              addresses->end(),
          "addresses sorted and unique");
  std::vector<std::shared_ptr<router::Endpoint>> endpoints;
  for (const std::string& address : *addresses) {
    const size_t colon = address.rfind(':');
    int port = 0;
    Require(colon != std::string::npos && colon > 0, "address is host:port");
    Require(absl::SimpleAtoi(address.substr(colon + 1), &port) && port >= 1 && port <= 65535,
            "port in [1, 65535]");
    endpoints.push_back(std::make_shared<router::Endpoint>(address));
  }
  if (endpoints.size() > 64) return;  // the ring's cost grows with the list
  auto ring = router::Ring::Create(std::move(endpoints), {.points_per_endpoint = 8});
  Require(ring.ok(), "a parsed list builds a ring");
  const uint64_t hash = router::SessionHash(session_id);
  const int n = (*ring)->num_endpoints();
  std::vector<const router::Endpoint*> owners;
  for (int a = 0; a < n; ++a) owners.push_back((*ring)->Owner(hash, a).get());
  std::sort(owners.begin(), owners.end());
  Require(
      std::adjacent_find(owners.begin(), owners.end()) == owners.end() && owners.front() != nullptr,
      "owners are every worker once");
  Require((*ring)->Owner(hash, n) == nullptr, "no owner past the last worker");
  Require((*ring)->Pick(hash, 0) == (*ring)->Owner(hash, 0), "an idle ring picks the owner");
}

}  // namespace
}  // namespace ringserve::fuzz

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // Invalid UTF-8 in a string field fails the parse with an error log per input.
  google::protobuf::SetLogHandler(nullptr);
  (void)ringserve::fuzz::Worlds();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fz = ringserve::fuzz;
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  ringserve::v1::GenerateRequest request;
  switch (data[0] % 4) {
    case 0:
      if (request.ParseFromArray(rest.data(), static_cast<int>(rest.size()))) {
        fz::CheckRequest(request);
      }
      break;
    case 1:
      if (google::protobuf::TextFormat::ParseFromString(std::string(rest), &request)) {
        fz::CheckRequest(request);
      }
      break;
    case 2:
      fz::CheckRequest(fz::BuildRequest(rest));
      break;
    default: {
      const size_t newline = rest.find('\n');
      fz::CheckWorkers(rest.substr(0, newline),
                       newline == std::string_view::npos ? "" : rest.substr(newline + 1));
      fz::CheckSessionKey(rest);
      break;
    }
  }
  return 0;
}
