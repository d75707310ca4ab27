// `ringserve-cli generate`: one Generate stream. Text goes to stdout as it arrives (a
// summary to stderr), or with --json one object once the stream ends.
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/text_file.h"
#include "ringserve/v1/inference.grpc.pb.h"
#include "tools/grpc_client/grpc_client.h"
#include "tools/ringserve-cli/chat_tools.h"
#include "tools/ringserve-cli/cli.h"

namespace ringserve::tools::cli {
namespace {

using ringserve::v1::GenerateFinal;
using ringserve::v1::GenerateRequest;
using ringserve::v1::GenerateResponse;

constexpr char kUsage[] =
    "usage: ringserve-cli [--target HOST:PORT] generate --session S\n"
    "       (--text T | --tokens 1,2,3 | --message ROLE:TEXT...)\n"
    "       [--append] [--max-tokens N] [--min-tokens N] [--temperature X] [--top-p P]\n"
    "       [--top-k K] [--seed N] [--stop STR]... [--include-stop] [--ignore-eos]\n"
    "       [--logit-bias ID:BIAS,...]\n"
    "       [--logprobs N] [--prompt-logprobs N] [--n N] [--truncate-prompt-tokens N]\n"
    "       [--adapter NAME]\n"
    "       [--json-object | --json-schema FILE | --regex RE | --grammar-file FILE |\n"
    "        --choice TEXT...]\n"
    "       [--tools FILE] [--tool-choice auto|none|required|NAME] [--no-parallel-tool-calls]\n"
    "       [--stream-tool-calls]\n"
    "       [--thinking | --no-thinking] [--continue]\n"
    "       [--timeout-s S] [--json]";

struct GenerateFlags {
  std::string session;
  std::string text;
  std::string tokens;
  std::string request_id;
  bool append = false;
  int max_tokens = 0;
  int min_tokens = 0;
  double temperature = 1.0;
  double top_p = 1.0;
  int top_k = 0;
  int64_t seed = 0;
  std::vector<std::string> stop;
  std::vector<std::string> messages;  // ROLE:TEXT, a chat request
  bool ignore_eos = false;
  bool include_stop = false;  // --include-stop
  std::string logit_bias;
  int logprobs = 0;
  int prompt_logprobs = 0;
  int truncate_prompt_tokens = 0;
  std::string adapter;  // a LoRA adapter the worker serves
  int n = 1;
  bool json_object = false;
  std::string json_schema;  // a file
  std::string regex;
  std::vector<std::string> choices;  // --choice, repeated
  std::string grammar_file;
  std::string tools;  // a file
  std::string tool_choice;
  bool no_thinking = false;
  bool thinking = false;  // enable_thinking true: think even before a JSON format
  bool no_parallel_tool_calls = false;
  bool stream_tool_calls = false;
  bool continue_final = false;  // the last --message is the reply's start
};

// "42:-100,7:2.5" into the request's logit_bias.
absl::Status ParseLogitBias(const std::string& list, GenerateRequest* request) {
  auto* bias = request->mutable_sampling()->mutable_logit_bias();
  for (absl::string_view piece : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    const std::vector<absl::string_view> parts = absl::StrSplit(piece, ':');
    int32_t id = 0;
    float value = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &id) ||
        !absl::SimpleAtof(parts[1], &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--logit-bias: '", std::string(piece), "' is not ID:BIAS"));
    }
    if (!bias->insert({id, value}).second) {
      return absl::InvalidArgumentError(absl::StrCat("--logit-bias: token ", id, " given twice"));
    }
  }
  return absl::OkStatus();
}

// Only flags given on the command line are set, so the server's documented defaults
// apply to the rest.
absl::StatusOr<GenerateRequest> BuildRequest(const GenerateFlags& flags, const ArgParser& parser) {
  GenerateRequest request;
  request.set_session_id(flags.session);
  request.set_request_id(flags.request_id);
  request.set_append(flags.append);
  const int inputs = static_cast<int>(parser.IsSet("text")) +
                     static_cast<int>(parser.IsSet("tokens")) +
                     static_cast<int>(!flags.messages.empty());
  if (inputs != 1) {
    return absl::InvalidArgumentError("give exactly one of --text, --tokens and --message");
  }
  if (parser.IsSet("text")) {
    request.set_text(flags.text);
  } else if (parser.IsSet("tokens")) {
    RS_RETURN_IF_ERROR(ParseTokenIds(flags.tokens, request.mutable_tokens()));
  }
  if (!flags.messages.empty()) {
    RS_RETURN_IF_ERROR(AddMessages(flags.messages, request.mutable_chat()));
  }
  if (!flags.tools.empty() || !flags.tool_choice.empty() || flags.no_parallel_tool_calls ||
      flags.stream_tool_calls) {
    if (flags.messages.empty()) {
      return absl::InvalidArgumentError(
          "--tools, --tool-choice, --no-parallel-tool-calls and --stream-tool-calls need a chat "
          "(--message)");
    }
    RS_RETURN_IF_ERROR(AddTools(flags.tools, flags.tool_choice, request.mutable_chat()));
    if (flags.no_parallel_tool_calls) request.mutable_chat()->set_parallel_tool_calls(false);
    if (flags.stream_tool_calls) request.mutable_chat()->set_stream_tool_calls(true);
  }
  if (flags.no_thinking || flags.thinking) {
    if (flags.messages.empty()) {
      return absl::InvalidArgumentError("--thinking and --no-thinking need --message");
    }
    if (flags.no_thinking && flags.thinking) {
      return absl::InvalidArgumentError("give one of --thinking and --no-thinking");
    }
    request.mutable_chat()->set_enable_thinking(flags.thinking);
  }
  if (flags.continue_final) {
    if (flags.messages.empty()) return absl::InvalidArgumentError("--continue needs --message");
    request.mutable_chat()->set_continue_final_message(true);
  }
  auto* sampling = request.mutable_sampling();
  if (parser.IsSet("temperature")) sampling->set_temperature(static_cast<float>(flags.temperature));
  if (parser.IsSet("top-p")) sampling->set_top_p(static_cast<float>(flags.top_p));
  sampling->set_top_k(flags.top_k);
  if (parser.IsSet("seed")) sampling->set_seed(static_cast<uint64_t>(flags.seed));
  RS_RETURN_IF_ERROR(ParseLogitBias(flags.logit_bias, &request));
  auto* stop = request.mutable_stop();
  if (parser.IsSet("max-tokens")) stop->set_max_tokens(flags.max_tokens);
  stop->set_min_tokens(flags.min_tokens);
  for (const std::string& s : flags.stop) stop->add_stop(s);
  stop->set_ignore_eos(flags.ignore_eos);
  stop->set_include_stop_str_in_output(flags.include_stop);
  request.set_logprobs(flags.logprobs);
  if (parser.IsSet("prompt-logprobs")) request.set_prompt_logprobs(flags.prompt_logprobs);
  if (parser.IsSet("truncate-prompt-tokens")) {
    request.set_truncate_prompt_tokens(flags.truncate_prompt_tokens);
  }
  request.set_n(flags.n);
  request.set_adapter(flags.adapter);
  const int formats = (flags.json_object ? 1 : 0) + (flags.json_schema.empty() ? 0 : 1) +
                      (flags.regex.empty() ? 0 : 1) + (flags.grammar_file.empty() ? 0 : 1) +
                      (flags.choices.empty() ? 0 : 1);
  if (formats > 1) {
    return absl::InvalidArgumentError(
        "give one of --json-object, --json-schema, --regex, --grammar-file and --choice");
  }
  if (!flags.regex.empty()) request.mutable_response_format()->set_regex(flags.regex);
  for (const std::string& choice : flags.choices) {
    request.mutable_response_format()->mutable_choice()->add_choices(choice);
  }
  if (!flags.grammar_file.empty()) {
    RS_ASSIGN_OR_RETURN(std::string text, ReadTextFile(flags.grammar_file, "grammar"));
    request.mutable_response_format()->set_grammar(std::move(text));
  }
  if (flags.json_object) request.mutable_response_format()->mutable_json_object();
  if (!flags.json_schema.empty()) {
    // The worker checks the schema; the client only sends it.
    RS_ASSIGN_OR_RETURN(std::string schema, ReadTextFile(flags.json_schema, "JSON Schema"));
    request.mutable_response_format()->mutable_json_schema()->set_schema(std::move(schema));
  }
  return request;
}

nlohmann::json LogprobJson(const ringserve::v1::PositionLogprobs& position) {
  nlohmann::json top = nlohmann::json::array();
  for (const auto& t : position.top()) {
    top.push_back({{"token_id", t.token_id()}, {"logprob", t.logprob()}});
  }
  return {{"token_id", position.chosen().token_id()},
          {"logprob", position.chosen().logprob()},
          {"top", std::move(top)}};
}

// What the stream delivered, gathered for the final report.
struct Completion {
  std::string text;
  std::vector<int32_t> token_ids;
  nlohmann::json logprobs = nlohmann::json::array();
  nlohmann::json prompt_logprobs = nlohmann::json::array();
  nlohmann::json tool_calls = nlohmann::json::array();
  std::string reasoning;          // a thinking model's thought
  double prompt_logprob_sum = 0;  // of the scored input tokens
  int streamed_calls = 0;         // calls whose deltas were printed as they came
  GenerateFinal final;
  bool has_final = false;
};

nlohmann::json CompletionJson(const Completion& c, const std::string& worker, bool logprobs) {
  const auto& usage = c.final.usage();
  nlohmann::json out = {{"text", c.text},
                        {"token_ids", c.token_ids},
                        {"finish_reason", FinishReasonName(c.final.finish_reason())},
                        {"worker", worker},
                        {"usage",
                         {{"prompt_tokens", usage.prompt_tokens()},
                          {"cached_tokens", usage.cached_tokens()},
                          {"truncated_tokens", usage.truncated_tokens()},
                          {"completion_tokens", usage.completion_tokens()},
                          {"queue_time_us", usage.queue_time_us()},
                          {"time_to_first_token_us", usage.time_to_first_token_us()}}},
                        {"history_tokens", c.final.history_tokens()},
                        {"seed", c.final.seed()}};
  if (!c.final.stop_match().empty()) out["stop_match"] = c.final.stop_match();
  if (logprobs) out["logprobs"] = c.logprobs;
  if (!c.prompt_logprobs.empty()) out["prompt_logprobs"] = c.prompt_logprobs;
  if (!c.tool_calls.empty()) out["tool_calls"] = c.tool_calls;
  if (!c.reasoning.empty()) out["reasoning"] = c.reasoning;
  return out;
}

void PrintSummary(const Completion& c, const std::string& worker) {
  const auto& usage = c.final.usage();
  std::cerr << absl::StrFormat(
      "[%s; worker %s; prompt %d tokens (%d cached), completion %d; ttft %.1f ms; total %.1f ms]\n",
      FinishReasonName(c.final.finish_reason()), worker.empty() ? "?" : worker,
      usage.prompt_tokens(), usage.cached_tokens(), usage.completion_tokens(),
      usage.time_to_first_token_us() / 1e3, usage.total_time_us() / 1e3);
  if (usage.truncated_tokens() > 0) {
    std::cerr << absl::StrFormat("[input: its first %d tokens dropped (truncate_prompt_tokens)]\n",
                                 usage.truncated_tokens());
  }
  if (!c.prompt_logprobs.empty()) {
    const auto scored = static_cast<double>(c.prompt_logprobs.size());
    std::cerr << absl::StrFormat("[input: %zu tokens scored, logprob %.4f, perplexity %.4f]\n",
                                 c.prompt_logprobs.size(), c.prompt_logprob_sum,
                                 std::exp(-c.prompt_logprob_sum / scored));
  }
}

}  // namespace

std::string FinishReasonName(ringserve::v1::FinishReason reason) {
  std::string name = ringserve::v1::FinishReason_Name(reason);
  constexpr absl::string_view kPrefix = "FINISH_REASON_";
  if (absl::StartsWith(name, kPrefix)) name = name.substr(kPrefix.size());
  return absl::AsciiStrToLower(name);
}

absl::Status RunGenerate(CommandArgs args) {
  GenerateFlags flags;
  ArgParser parser;
  parser.AddString("session", &flags.session, "session id (empty: a one-off request)");
  parser.AddString("text", &flags.text, "prompt text");
  parser.AddString("tokens", &flags.tokens, "prompt as comma-separated token ids");
  parser.AddString("request-id", &flags.request_id, "echoed in the final message and logs");
  parser.AddBool("append", &flags.append, "continue the session's context");
  parser.AddInt("max-tokens", &flags.max_tokens, "most tokens to generate");
  parser.AddInt("min-tokens", &flags.min_tokens,
                "fewest tokens to generate: end-of-sequence and stop ids wait until then");
  parser.AddFloat("temperature", &flags.temperature, "0 = greedy (server default 1.0)");
  parser.AddFloat("top-p", &flags.top_p, "nucleus mass in (0, 1]");
  parser.AddInt("top-k", &flags.top_k, "0 = off");
  parser.AddInt("seed", &flags.seed, "sampler seed (server picks one when unset)");
  parser.AddRepeated("stop", &flags.stop, "stop string (repeatable)");
  parser.AddBool("include-stop", &flags.include_stop,
                 "the matched stop string ends the text (include_stop_str_in_output)");
  parser.AddRepeated("message", &flags.messages,
                     "ROLE:TEXT, one message of a chat in order (repeatable; roles system, user, "
                     "assistant, tool); rendered in the model's chat format; tool@ID:TEXT "
                     "names the call a result answers (the mistral format writes it)");
  parser.AddBool("ignore-eos", &flags.ignore_eos, "generate past end-of-sequence tokens");
  parser.AddString("logit-bias", &flags.logit_bias,
                   "ID:BIAS,... added to those tokens' logits, each bias in [-100, 100]");
  parser.AddInt("logprobs", &flags.logprobs, "N alternatives per token (JSON output only)");
  parser.AddInt("prompt-logprobs", &flags.prompt_logprobs,
                "score the input: each token's logprob and N alternatives (JSON output; the "
                "summary gives the input's perplexity)",
                IntRange{.min = 0, .max = 20});
  parser.AddInt("truncate-prompt-tokens", &flags.truncate_prompt_tokens,
                "use only the input's last N tokens (-1: as many as fit with room for "
                "--max-tokens)");
  parser.AddString("adapter", &flags.adapter,
                   "run with this LoRA adapter of the worker's (ModelInfo.adapters; `ringserve-cli "
                   "info` lists them)");
  parser.AddInt("n", &flags.n,
                "completions of the input, sampled with seeds seed, seed + 1, ... on one worker "
                "(1; with more, each is printed once it ends, or --json gives an array)",
                IntRange{.min = 1, .max = 64});
  parser.AddBool("json-object", &flags.json_object,
                 "structured output: the reply is a JSON object");
  parser.AddString("json-schema", &flags.json_schema,
                   "structured output: the reply is JSON that satisfies the JSON Schema in this "
                   "file");
  parser.AddString("regex", &flags.regex,
                   "structured output: the reply matches this regular expression as a whole");
  parser.AddRepeated("choice", &flags.choices,
                     "structured output: the reply is exactly one of these strings (repeatable)");
  parser.AddString("grammar-file", &flags.grammar_file,
                   "structured output: the reply derives from the GBNF grammar in this file "
                   "(its rule \"root\")");
  parser.AddString("tools", &flags.tools,
                   "tool calling: a JSON file with an array of tools ({name, description, "
                   "parameters}, or OpenAI's {type: function, function: {...}}) the chat offers");
  parser.AddString("tool-choice", &flags.tool_choice,
                   "auto (calls or text), none, required (one or more calls), or a tool's name");
  parser.AddBool("no-parallel-tool-calls", &flags.no_parallel_tool_calls,
                 "a reply makes at most one tool call");
  parser.AddBool("stream-tool-calls", &flags.stream_tool_calls,
                 "print each tool call's arguments as they are generated");
  parser.AddBool("thinking", &flags.thinking,
                 "a model that thinks first thinks even before a JSON format's value");
  parser.AddBool("no-thinking", &flags.no_thinking,
                 "a model that thinks first (info: thinking) answers without its thought");
  parser.AddBool("continue", &flags.continue_final,
                 "the last --message is assistant:TEXT, the start of the reply, which the model "
                 "continues (its text is not printed again)");
  RS_RETURN_IF_ERROR(ParseCommand(kUsage, args, parser));
  absl::StatusOr<GenerateRequest> request = BuildRequest(flags, parser);
  if (!request.ok()) return UsageError(request.status());

  RS_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, OpenChannel(args.common));
  auto stub = ringserve::v1::Inference::NewStub(channel);
  grpc::ClientContext context;
  SetTimeout(&context, args.common.TimeoutOr(0));
  std::unique_ptr<grpc::ClientReader<GenerateResponse>> reader = stub->Generate(&context, *request);
  std::vector<Completion> completions(static_cast<size_t>(flags.n));
  const bool stream_text = !args.common.json && flags.n == 1;
  GenerateResponse response;
  while (reader->Read(&response)) {
    if (response.index() < 0 || response.index() >= flags.n) {
      return absl::DataLossError(
          absl::StrCat("a message for completion ", response.index(), " of ", flags.n));
    }
    Completion& c = completions[static_cast<size_t>(response.index())];
    c.token_ids.insert(c.token_ids.end(), response.token_ids().begin(), response.token_ids().end());
    c.text += response.text();
    for (const auto& position : response.logprobs()) c.logprobs.push_back(LogprobJson(position));
    for (const auto& position : response.prompt_logprobs()) {
      c.prompt_logprobs.push_back(LogprobJson(position));
      c.prompt_logprob_sum += position.chosen().logprob();
    }
    c.reasoning += response.reasoning();
    // The thought goes to stderr, so that stdout holds the answer alone.
    if (stream_text && !response.reasoning().empty()) std::cerr << response.reasoning();
    if (stream_text && !response.text().empty()) std::cout << response.text() << std::flush;
    for (const auto& delta : response.tool_call_deltas()) {
      if (!stream_text) continue;
      if (!delta.id().empty()) {  // a call begins: its line fills as the arguments come
        std::cout << (c.text.empty() ? "" : "\n") << "[call " << delta.id() << "] " << delta.name()
                  << " ";
        ++c.streamed_calls;
      }
      std::cout << delta.arguments() << std::flush;
    }
    for (const auto& call : response.tool_calls()) {
      const bool streamed = c.streamed_calls > static_cast<int>(c.tool_calls.size());
      c.tool_calls.push_back(ToolCallJson(call));
      if (!stream_text) continue;
      if (streamed) {
        std::cout << "\n";
      } else {
        std::cout << (c.text.empty() ? "" : "\n") << ToolCallLine(call) << "\n";
      }
    }
    if (response.has_final()) {
      c.final = response.final();
      c.has_final = true;
      if (!args.common.json && flags.n > 1) {
        std::cout << "[" << response.index() << "] " << c.text << "\n" << std::flush;
      }
    }
  }
  const grpc::Status status = reader->Finish();
  if (stream_text && !completions[0].text.empty()) std::cout << "\n";
  if (!status.ok()) return FromGrpcStatus(status);
  nlohmann::json all = nlohmann::json::array();
  for (size_t i = 0; i < completions.size(); ++i) {
    const Completion& c = completions[i];
    if (!c.has_final) return absl::DataLossError("the stream ended without a final message");
    const std::string worker = ServingWorker(context, c.final.usage().worker_id());
    if (args.common.json) {
      all.push_back(CompletionJson(c, worker, flags.logprobs > 0));
      continue;
    }
    if (flags.n > 1) std::cerr << "[" << i << "] ";
    PrintSummary(c, worker);
  }
  if (args.common.json) PrintJson(flags.n == 1 ? all[0] : all);
  return absl::OkStatus();
}

}  // namespace ringserve::tools::cli
