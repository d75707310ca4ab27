// `ringserve-run --model PATH --prompt TEXT ...`: generate for every prompt through the
// generator in process (continuous batching, as a worker serves them) and print the results
// in prompt order. --prompt-ids gives a prompt as token ids (no tokenizer needed; without
// one, no text is printed); --chat sends each text prompt as a user message in the model's
// chat format.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/text_file.h"
#include "nlohmann/json.hpp"
#include "tools/common/chat_format_flag.h"
#include "tools/common/model_setup.h"
#include "tools/common/speculation_flags.h"
#include "tools/ringserve-run/commands.h"
#include "tools/ringserve-run/run_requests.h"
#include "worker/engine/embedding.h"
#include "worker/engine/generator.h"
#include "worker/engine/llama_runner.h"
#include "worker/grammar/regex.h"
#include "worker/tokenizer/thought_splitter.h"

namespace ringserve::tools {
namespace {

struct RunFlags {
  ModelFlags model;
  SpeculationFlags speculation;
  std::vector<std::string> prompts;
  std::vector<std::string> prompt_ids;  // after the text prompts, in order
  std::string prompts_file;
  int max_tokens = 64;
  bool embed = false;   // --embed, with --dimensions and --raw
  std::string adapter;  // --adapter: one of --lora's names
  int dimensions = 0;
  bool raw = false;
  double temperature = 0.0;
  int top_k = 0;
  double top_p = 1.0;
  double min_p = 0.0;
  double repetition_penalty = 1.0;
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  std::vector<std::string> stop;
  bool chat = false;
  std::string system;
  bool no_thinking = false;
  std::string chat_format = "auto";
  int max_seqs = 64;
  int logprobs = 0;
  int prompt_logprobs = -1;  // off
  bool json_object = false;
  std::string json_schema;
  std::string regex;
  std::vector<std::string> choices;  // --choice, repeated
  std::string grammar_file;
  bool json = false;
  bool sequential = false;
  bool ignore_eos = false;
};

void Register(ArgParser& parser, RunFlags& flags) {
  flags.model.Register(parser);
  flags.speculation.Register(parser);
  parser.AddRepeated("prompt", &flags.prompts, "prompt text (repeatable)");
  parser.AddString("prompts-file", &flags.prompts_file, "file with one prompt per line");
  parser.AddRepeated("prompt-ids", &flags.prompt_ids,
                     "prompt as token ids, e.g. 1,450 (repeatable)");
  parser.AddInt("max-tokens", &flags.max_tokens,
                "tokens to generate per prompt (64; 0: compute and score the prompt only)",
                IntRange{.min = 0});
  parser.AddString("adapter", &flags.adapter,
                   "run every prompt with this LoRA adapter (a NAME of --lora)");
  parser.AddBool("embed", &flags.embed,
                 "embed each prompt instead of generating: its last token's final hidden state, "
                 "scaled to unit length (Inference.Embed's)");
  parser.AddInt("dimensions", &flags.dimensions, "with --embed: keep the first N values (0: all)",
                IntRange{.min = 0});
  parser.AddBool("raw", &flags.raw, "with --embed: the hidden state not scaled to unit length");
  parser.AddFloat("temperature", &flags.temperature, "0 = greedy");
  parser.AddInt("top-k", &flags.top_k, "0 = off");
  parser.AddFloat("top-p", &flags.top_p, "nucleus mass in (0, 1]");
  parser.AddFloat("min-p", &flags.min_p, "min probability relative to the top token");
  parser.AddFloat("repetition-penalty", &flags.repetition_penalty,
                  "divides the logits of tokens already in the context (1 = off)");
  parser.AddFloat("presence-penalty", &flags.presence_penalty,
                  "subtracted once from generated tokens' logits, in [-2, 2]");
  parser.AddFloat("frequency-penalty", &flags.frequency_penalty,
                  "subtracted per occurrence from generated tokens' logits, in [-2, 2]");
  parser.AddRepeated("stop", &flags.stop,
                     "stop when the generated text contains this string (repeatable; the "
                     "string is not printed)");
  parser.AddBool("chat", &flags.chat,
                 "send each text prompt as the user's message in the model's chat format; the "
                 "reply ends at the assistant's end of turn");
  parser.AddString("system", &flags.system, "with --chat: the system message");
  parser.AddBool("no-thinking", &flags.no_thinking,
                 "with --chat, a model that thinks first (Qwen3) answers without its thought");
  parser.AddString(
      "chat-format", &flags.chat_format,
      "auto (the checkpoint's), chatml, llama3, llama3.1, llama3.2, llama2, mistral, deepseek, "
      "zephyr or none");
  parser.AddBool("json-object", &flags.json_object,
                 "structured output: every reply is a JSON object");
  parser.AddString("json-schema", &flags.json_schema,
                   "structured output: every reply is JSON that satisfies the JSON Schema in "
                   "this file");
  parser.AddRepeated("choice", &flags.choices,
                     "structured output: the reply is exactly one of these strings (repeatable)");
  parser.AddString("regex", &flags.regex,
                   "structured output: every reply matches this regular expression as a whole");
  parser.AddString("grammar-file", &flags.grammar_file,
                   "structured output: every reply derives from the GBNF grammar in this file "
                   "(its rule \"root\")");
  parser.AddInt("max-seqs", &flags.max_seqs,
                "most prompts generating at once; the rest wait their turn (64)",
                IntRange{.min = 1, .max = 4096});
  parser.AddInt("logprobs", &flags.logprobs,
                "with --json: each generated token's log-probability and this many most likely "
                "alternatives (0 = none)",
                IntRange{.min = 0, .max = kernels::kMaxTopLogprobs});
  parser.AddInt("prompt-logprobs", &flags.prompt_logprobs,
                "score each prompt: every token's log-probability and this many most likely "
                "alternatives (with --json; a summary line gives each prompt's perplexity "
                "otherwise); -1, the default: off",
                IntRange{.min = -1, .max = kernels::kMaxTopLogprobs});
  parser.AddBool("json", &flags.json, "one JSON object per prompt");
  parser.AddBool("sequential", &flags.sequential, "run prompts one at a time");
  parser.AddBool("ignore-eos", &flags.ignore_eos, "do not stop at end-of-generation tokens");
}

absl::Status ReadPromptsFile(const std::string& path, std::vector<std::string>* prompts) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open prompts file"));
  std::string line;
  while (std::getline(in, line)) prompts->push_back(line);
  return absl::OkStatus();
}

using GrammarOr = absl::StatusOr<std::shared_ptr<const grammar::Grammar>>;

// A compiled response format, its error prefixed with the flag that gave it.
GrammarOr Labelled(GrammarOr grammar, const std::string& label) {
  if (grammar.ok()) return grammar;
  return absl::InvalidArgumentError(absl::StrCat(label, ": ", grammar.status().message()));
}

GrammarOr ResponseFormatFor(const RunFlags& flags) {
  const int formats = (flags.json_object ? 1 : 0) + (flags.json_schema.empty() ? 0 : 1) +
                      (flags.regex.empty() ? 0 : 1) + (flags.grammar_file.empty() ? 0 : 1) +
                      (flags.choices.empty() ? 0 : 1);
  if (formats > 1) {
    return absl::InvalidArgumentError(
        "--json-object, --json-schema, --regex, --grammar-file and --choice: give one of them");
  }
  if (flags.json_object) return grammar::Grammar::AnyObject();
  if (!flags.choices.empty()) {
    absl::StatusOr<std::string> pattern = grammar::ChoicePattern(flags.choices);
    if (!pattern.ok()) return Labelled(pattern.status(), "--choice");
    return Labelled(grammar::Grammar::FromRegex(*pattern), "--choice");
  }
  if (!flags.regex.empty()) return Labelled(grammar::Grammar::FromRegex(flags.regex), "--regex");
  if (!flags.grammar_file.empty()) {
    RS_ASSIGN_OR_RETURN(const std::string text, ReadTextFile(flags.grammar_file, "grammar"));
    return Labelled(grammar::Grammar::FromGbnf(text), "--grammar-file " + flags.grammar_file);
  }
  if (flags.json_schema.empty()) return nullptr;
  RS_ASSIGN_OR_RETURN(const std::string schema, ReadTextFile(flags.json_schema, "JSON Schema"));
  return Labelled(grammar::Grammar::FromSchema(schema), "--json-schema " + flags.json_schema);
}

absl::StatusOr<RunSettings> SettingsFor(const RunFlags& flags, const LoadedModel& loaded) {
  RunSettings s;
  s.sampling.temperature = static_cast<float>(flags.temperature);
  s.sampling.top_k = flags.top_k;
  s.sampling.top_p = static_cast<float>(flags.top_p);
  s.sampling.min_p = static_cast<float>(flags.min_p);
  s.sampling.repetition_penalty = static_cast<float>(flags.repetition_penalty);
  s.sampling.presence_penalty = static_cast<float>(flags.presence_penalty);
  s.sampling.frequency_penalty = static_cast<float>(flags.frequency_penalty);
  s.sampling.seed = static_cast<uint64_t>(flags.model.seed);
  s.sampling.num_logprobs = flags.logprobs;
  RS_RETURN_IF_ERROR(engine::ValidateSamplingParams(s.sampling));
  s.max_tokens = flags.embed ? 0 : flags.max_tokens;
  s.embed = flags.embed;
  RS_RETURN_IF_ERROR(AdapterIndex(loaded, flags.adapter).status());  // a --lora name
  s.adapter = flags.adapter;
  s.stop_strings = flags.stop;
  s.ignore_eos = flags.ignore_eos;
  if (flags.prompt_logprobs >= 0) s.prompt_logprobs = flags.prompt_logprobs;
  RS_ASSIGN_OR_RETURN(s.response_format, ResponseFormatFor(flags));
  s.chat = flags.chat;
  if (flags.chat) {
    RS_ASSIGN_OR_RETURN(s.chat_format, ChatFormatFor(flags.chat_format, loaded.tokenizer.get()));
    s.system = flags.system;
    // A response format binds from the first token: no room for a thought.
    s.think = !flags.no_thinking && s.response_format == nullptr;
    if (loaded.tokenizer != nullptr) {
      s.default_system = tokenizer::DefaultSystemPromptOf(*loaded.tokenizer, s.chat_format);
      s.thinking = tokenizer::ThinkingOf(*loaded.tokenizer, s.chat_format);
    }
  }
  return s;
}

absl::StatusOr<std::unique_ptr<engine::Generator>> MakeGenerator(
    const RunFlags& flags, const LoadedModel& loaded,
    std::span<const engine::JobRequest> requests) {
  engine::GeneratorOptions options;
  flags.speculation.Apply(options);
  options.lora_adapters = LoraAdaptersInHostMemory(loaded, flags.model);
  options.max_adapters = flags.model.max_cpu_loras;
  const auto num_requests = static_cast<int32_t>(requests.size());
  options.max_jobs = std::max(options.max_jobs, num_requests);
  // Results are read in prompt order, so a later job may finish long before it is read.
  options.max_pending_tokens =
      std::max(options.max_pending_tokens, flags.max_tokens + flags.speculation.tokens + 1);
  model::ModelOptions model_options;
  model_options.max_seqs = flags.sequential ? 1 : std::min(flags.max_seqs, num_requests);
  model_options.max_sampled_rows =
      engine::SampledRowsFor(options, model_options.max_seqs, flags.model.max_batch_tokens);
  model_options.num_kv_blocks = static_cast<int>(RunKvBlocks(
      requests, model_options.max_seqs, model_options.block_size, flags.speculation.tokens));
  RS_ASSIGN_OR_RETURN(auto model, CreateModel(loaded, flags.model, model_options));
  return engine::Generator::Create(std::make_unique<engine::LlamaRunner>(std::move(model)),
                                   loaded.tokenizer.get(), options);
}

// One line an embedded prompt: its values, or with --json the prompt, its ids and usage too.
void PrintEmbedding(const RunFlags& flags, const std::string& prompt,
                    const engine::JobRequest& request, engine::JobEvent event) {
  std::vector<float>& values = event.result.embedding;
  engine::FinishEmbedding(values, flags.dimensions, !flags.raw);
  if (!flags.json) {
    std::cout << absl::StrJoin(values, " ") << "\n";
    return;
  }
  const engine::JobUsage& usage = event.result.usage;
  const nlohmann::json j = {
      {"prompt", prompt},
      {"prompt_ids", request.tokens},
      {"embedding", values},
      {"usage", {{"prompt_tokens", usage.prompt_tokens}, {"cached_tokens", usage.cached_tokens}}}};
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

void Print(const RunFlags& flags, const RunSettings& settings, const std::string& prompt,
           const engine::JobRequest& request, const engine::JobEvent& event) {
  // A thinking model's chat reply: the thought apart from the answer.
  tokenizer::ThoughtSplitter::Output reply{.thought = "", .answer = event.text};
  if (flags.chat && settings.thinking != tokenizer::Thinking::kNone) {
    tokenizer::ThoughtSplitter splitter(settings.thinking == tokenizer::Thinking::kAlways &&
                                        settings.think);
    reply = splitter.Feed(event.text);
    const tokenizer::ThoughtSplitter::Output rest = splitter.Finish();
    reply.thought += rest.thought;
    reply.answer += rest.answer;
  }
  if (!flags.json) {
    if (!reply.thought.empty()) std::cerr << "[thought] " << reply.thought << "\n";
    std::cout << (flags.chat ? "" : prompt) << reply.answer << "\n";
    if (request.prompt_logprobs.has_value() && !event.prompt_logprobs.empty()) {
      double sum = 0;
      for (const engine::GeneratedToken& t : event.prompt_logprobs) sum += t.logprob;
      const auto scored = static_cast<double>(event.prompt_logprobs.size());
      std::cerr << "[prompt: " << event.prompt_logprobs.size() << " tokens scored, logprob " << sum
                << ", perplexity " << std::exp(-sum / scored) << "]\n";
    }
    return;
  }
  std::vector<int32_t> ids;
  nlohmann::json logprobs = nlohmann::json::array();
  for (const engine::GeneratedToken& t : event.tokens) {
    ids.push_back(t.id);
    if (flags.logprobs > 0) {
      logprobs.push_back({{"id", t.id}, {"logprob", t.logprob}, {"top", t.top_logprobs}});
    }
  }
  const engine::JobUsage& usage = event.result.usage;
  nlohmann::json j = {{"prompt", prompt},
                      {"prompt_ids", request.tokens},
                      {"generated_ids", ids},
                      {"text", reply.answer},
                      {"finish_reason", engine::FinishReasonName(event.result.finish_reason)},
                      {"usage",
                       {{"prompt_tokens", usage.prompt_tokens},
                        {"cached_tokens", usage.cached_tokens},
                        {"completion_tokens", usage.completion_tokens}}}};
  if (flags.logprobs > 0) j["logprobs"] = std::move(logprobs);
  if (!reply.thought.empty()) j["reasoning"] = reply.thought;
  if (request.prompt_logprobs.has_value()) {
    nlohmann::json scored = nlohmann::json::array();
    for (const engine::GeneratedToken& t : event.prompt_logprobs) {
      scored.push_back({{"id", t.id}, {"logprob", t.logprob}, {"top", t.top_logprobs}});
    }
    j["prompt_logprobs"] = std::move(scored);
  }
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

}  // namespace

absl::Status RunGenerate(int argc, char** argv) {
  RunFlags flags;
  ArgParser parser;
  Register(parser, flags);
  RS_RETURN_IF_ERROR(parser.Parse(argc, argv));
  RS_RETURN_IF_ERROR(flags.speculation.Validate());
  if (!flags.prompts_file.empty()) {
    RS_RETURN_IF_ERROR(ReadPromptsFile(flags.prompts_file, &flags.prompts));
  }
  if (flags.prompts.empty() && flags.prompt_ids.empty()) {
    return absl::InvalidArgumentError("give at least one --prompt or --prompt-ids");
  }
  if (flags.chat && !flags.prompt_ids.empty()) {
    return absl::InvalidArgumentError("--chat takes text prompts, not --prompt-ids");
  }
  if (flags.embed && (flags.chat || flags.prompt_logprobs >= 0 || flags.speculation.tokens > 0 ||
                      flags.json_object || !flags.json_schema.empty() || !flags.choices.empty() ||
                      !flags.regex.empty() || !flags.grammar_file.empty())) {
    return absl::InvalidArgumentError(
        "--embed computes each prompt and generates nothing: no --chat, --prompt-logprobs, "
        "--speculate or structured output with it");
  }
  if (!flags.embed && (flags.dimensions > 0 || flags.raw)) {
    return absl::InvalidArgumentError("--dimensions and --raw go with --embed");
  }

  RS_ASSIGN_OR_RETURN(LoadedModel loaded, OpenModel(flags.model));
  std::vector<std::vector<int32_t>> ids;
  for (const std::string& text : flags.prompt_ids) {
    RS_ASSIGN_OR_RETURN(ids.emplace_back(), ParseTokenIds(text, loaded.config.vocab_size));
  }
  RS_ASSIGN_OR_RETURN(const RunSettings settings, SettingsFor(flags, loaded));
  RS_ASSIGN_OR_RETURN(const std::vector<engine::JobRequest> requests,
                      BuildJobRequests(flags.prompts, ids, settings, loaded.tokenizer.get(),
                                       loaded.config.max_seq_len));
  RS_ASSIGN_OR_RETURN(std::unique_ptr<engine::Generator> generator,
                      MakeGenerator(flags, loaded, requests));

  const auto start = std::chrono::steady_clock::now();
  std::vector<engine::JobHandle> handles;
  int64_t prompt_tokens = 0;
  int64_t generated = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    // Every job is queued at once; the generator runs max_seqs of them at a time.
    const size_t last = flags.sequential ? i : requests.size() - 1;
    for (size_t j = handles.size(); j <= last; ++j) {
      absl::StatusOr<engine::JobHandle> handle = generator->Submit(requests[j]);
      if (!handle.ok()) return handle.status();
      handles.push_back(*std::move(handle));
    }
    const engine::JobEvent event = handles[i].Collect();
    if (!event.status.ok()) {
      return absl::Status(event.status.code(),
                          absl::StrCat("prompt ", i + 1, ": ", event.status.message()));
    }
    prompt_tokens += event.result.usage.prompt_tokens;
    generated += event.result.usage.completion_tokens;
    const std::string& prompt =
        i < flags.prompts.size() ? flags.prompts[i] : flags.prompt_ids[i - flags.prompts.size()];
    if (flags.embed) {
      PrintEmbedding(flags, prompt, requests[i], event);
    } else {
      Print(flags, settings, prompt, requests[i], event);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr,
               "%zu prompt%s: %lld prompt tokens, %lld generated in %.2f s (%.1f generated "
               "tokens/s)\n",
               requests.size(), requests.size() == 1 ? "" : "s",
               static_cast<long long>(prompt_tokens), static_cast<long long>(generated), seconds,
               seconds > 0 ? generated / seconds : 0);
  return absl::OkStatus();
}

}  // namespace ringserve::tools
