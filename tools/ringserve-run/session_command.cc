// `ringserve-run session --script FILE`: multi-turn conversations through the generator,
// in process, one JSON line per step of the script. For tests and for trying sessions,
// forks and appends without a server. Script lines (JSON; blank and '#' lines skipped):
//   {"session": "s1", "text": "Once upon a time", "max_tokens": 32}
//   {"session": "s1", "append": true, "text": " Then", "temperature": 0.8, "seed": 3}
//   {"fork": "s1", "n": 2}          -> {"forks": ["s1#f1", "s1#f2"]}
//   {"close": "s1"}                 -> {"closed": "s1", "num_tokens": n}
// A turn prints {"session", "text", "token_ids", "finish_reason", "usage", "history_tokens"}
// or {"session", "error"}; the script goes on after an error, like a server would. A line
// that is not a JSON object, or has a field of the wrong type, stops it (exit status 2).
#include <cstdint>
#include <fstream>
#include <iostream>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/common/model_setup.h"
#include "tools/common/speculation_flags.h"
#include "tools/ringserve-run/commands.h"
#include "worker/engine/generator.h"
#include "worker/engine/llama_runner.h"

namespace ringserve::tools {
namespace {

using nlohmann::json;

// A field of a script line, `fallback` when absent. A value of another JSON type is an error
// naming the field: nlohmann's own conversion would throw, and nothing catches it.
template <typename T>
absl::StatusOr<T> Field(const json& line, const char* key, T fallback) {
  const auto it = line.find(key);
  if (it == line.end()) return fallback;
  const json& v = *it;
  if constexpr (std::is_same_v<T, bool>) {
    if (v.is_boolean()) return v.get<bool>();
    return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be true or false"));
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (v.is_string()) return v.get<std::string>();
    return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be a string"));
  } else if constexpr (std::is_floating_point_v<T>) {
    if (v.is_number()) return v.get<T>();
    return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be a number"));
  } else if constexpr (std::is_signed_v<T>) {
    // Non-negative integers are stored unsigned; below 2^63 get<int64_t>() is exact for both.
    if (v.is_number_integer() &&
        !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX})) {
      const int64_t x = v.get<int64_t>();
      if (x >= std::numeric_limits<T>::min() && x <= std::numeric_limits<T>::max()) {
        return static_cast<T>(x);
      }
    }
    return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be an integer in [",
                                                   std::numeric_limits<T>::min(), ", ",
                                                   std::numeric_limits<T>::max(), "]"));
  } else {
    static_assert(std::is_same_v<T, uint64_t>);
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be a non-negative integer"));
  }
}

absl::StatusOr<std::vector<std::string>> StopStrings(const json& line) {
  const auto it = line.find("stop");
  if (it == line.end()) return std::vector<std::string>();
  std::vector<std::string> strings;
  if (it->is_array()) {
    for (const json& s : *it) {
      if (!s.is_string()) break;
      strings.push_back(s.get<std::string>());
    }
    if (strings.size() == it->size()) return strings;
  }
  return absl::InvalidArgumentError("\"stop\" must be an array of strings");
}

absl::StatusOr<engine::JobRequest> TurnRequest(const json& line,
                                               const tokenizer::Tokenizer& tokenizer) {
  engine::JobRequest r;
  RS_ASSIGN_OR_RETURN(r.session_id, Field<std::string>(line, "session", ""));
  RS_ASSIGN_OR_RETURN(r.append, Field(line, "append", false));
  tokenizer::EncodeOptions encode;
  if (r.append) encode.add_bos = false;
  RS_ASSIGN_OR_RETURN(const std::string text, Field<std::string>(line, "text", ""));
  r.tokens = tokenizer.Encode(text, encode);
  RS_ASSIGN_OR_RETURN(r.max_tokens, Field<int32_t>(line, "max_tokens", 32));
  RS_ASSIGN_OR_RETURN(r.sampling.temperature, Field(line, "temperature", 0.0F));
  RS_ASSIGN_OR_RETURN(r.sampling.top_p, Field(line, "top_p", 1.0F));
  RS_ASSIGN_OR_RETURN(r.sampling.seed, Field(line, "seed", uint64_t{0}));
  RS_ASSIGN_OR_RETURN(r.ignore_eos, Field(line, "ignore_eos", false));
  RS_ASSIGN_OR_RETURN(r.stop_strings, StopStrings(line));
  return r;
}

absl::StatusOr<json> RunTurn(engine::Generator& generator, const json& line,
                             const tokenizer::Tokenizer& tok) {
  RS_ASSIGN_OR_RETURN(engine::JobRequest request, TurnRequest(line, tok));
  json out = {{"session", request.session_id}};
  absl::StatusOr<engine::JobHandle> handle = generator.Submit(std::move(request));
  if (!handle.ok()) {
    out["error"] = handle.status().ToString();
    return out;
  }
  const engine::JobEvent e = handle->Collect();
  if (!e.status.ok()) {
    out["error"] = e.status.ToString();
    return out;
  }
  std::vector<int32_t> ids;
  for (const engine::GeneratedToken& t : e.tokens) ids.push_back(t.id);
  const engine::JobUsage& u = e.result.usage;
  out["text"] = e.text;
  out["token_ids"] = ids;
  out["finish_reason"] = engine::FinishReasonName(e.result.finish_reason);
  out["usage"] = {{"prompt_tokens", u.prompt_tokens},
                  {"cached_tokens", u.cached_tokens},
                  {"completion_tokens", u.completion_tokens}};
  out["history_tokens"] = e.result.history_tokens;
  return out;
}

// The line's output; a malformed field is an error that stops the script.
absl::StatusOr<json> RunLine(engine::Generator& generator, const json& line,
                             const tokenizer::Tokenizer& tok) {
  if (line.contains("fork")) {
    RS_ASSIGN_OR_RETURN(const std::string id, Field<std::string>(line, "fork", ""));
    RS_ASSIGN_OR_RETURN(const int32_t n, Field<int32_t>(line, "n", 1));
    absl::StatusOr<std::vector<std::string>> forks = generator.Fork(id, n);
    if (!forks.ok()) return json{{"fork", id}, {"error", forks.status().ToString()}};
    return json{{"forks", *forks}};
  }
  if (line.contains("close")) {
    RS_ASSIGN_OR_RETURN(const std::string id, Field<std::string>(line, "close", ""));
    absl::StatusOr<int32_t> n = generator.CloseSession(id);
    if (!n.ok()) return json{{"close", id}, {"error", n.status().ToString()}};
    return json{{"closed", id}, {"num_tokens", *n}};
  }
  return RunTurn(generator, line, tok);
}

}  // namespace

absl::Status RunSession(int argc, char** argv) {
  ModelFlags model_flags;
  SpeculationFlags speculation;
  std::string script;
  ArgParser parser;
  model_flags.Register(parser);
  speculation.Register(parser);
  parser.AddString("script", &script, "file of JSON lines: turns, forks, closes");
  RS_RETURN_IF_ERROR(parser.Parse(argc, argv));
  RS_RETURN_IF_ERROR(speculation.Validate());
  if (script.empty()) return absl::InvalidArgumentError("--script FILE is required");
  std::ifstream in(script);
  if (!in) return absl::NotFoundError(absl::StrCat(script, ": cannot open"));

  RS_ASSIGN_OR_RETURN(LoadedModel loaded, OpenModel(model_flags));
  if (loaded.tokenizer == nullptr) {
    return absl::FailedPreconditionError("the model has no tokenizer; give --tokenizer");
  }
  engine::GeneratorOptions generator_options;
  speculation.Apply(generator_options);
  generator_options.lora_adapters = LoraAdaptersInHostMemory(loaded, model_flags);
  generator_options.max_adapters = model_flags.max_cpu_loras;
  engine::LlamaRunnerOptions runner_options;
  runner_options.kv_memory = {.bytes = size_t{256} << 20};
  runner_options.max_sampled_rows = engine::SampledRowsFor(
      generator_options, runner_options.max_seqs, model_flags.max_batch_tokens);
  RS_ASSIGN_OR_RETURN(
      auto model,
      CreateModel(loaded, model_flags, engine::ToModelOptions(runner_options, *loaded.backend)));
  RS_ASSIGN_OR_RETURN(
      std::unique_ptr<engine::Generator> generator,
      engine::Generator::Create(std::make_unique<engine::LlamaRunner>(std::move(model)),
                                loaded.tokenizer.get(), generator_options));
  std::string text;
  int line_number = 0;
  while (std::getline(in, text)) {
    ++line_number;
    if (text.find_first_not_of(" \t") == std::string::npos || text[0] == '#') continue;
    const json line = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (line.is_discarded() || !line.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(script, ":", line_number, ": not a JSON object"));
    }
    absl::StatusOr<json> out = RunLine(*generator, line, *loaded.tokenizer);
    if (!out.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(script, ":", line_number, ": ", out.status().message()));
    }
    std::cout << out->dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
  return absl::OkStatus();
}

}  // namespace ringserve::tools
