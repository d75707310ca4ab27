// `ringserve-run session --script FILE`: multi-turn conversations through the generator,
// in process, one JSON line per step of the script. For tests and for trying sessions,
// forks and appends without a server. Script lines (JSON; blank and '#' lines skipped):
//   {"session": "s1", "text": "Once upon a time", "max_tokens": 32}
//   {"session": "s1", "append": true, "text": " Then", "temperature": 0.8, "seed": 3}
//   {"fork": "s1", "n": 2}          -> {"forks": ["s1#f1", "s1#f2"]}
//   {"close": "s1"}                 -> {"closed": "s1", "num_tokens": n}
// A turn prints {"session", "text", "token_ids", "finish_reason", "usage", "history_tokens"}
// or {"session", "error"}; the script goes on after an error, like a server would.
#include <fstream>
#include <iostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/common/model_setup.h"
#include "tools/ringserve-run/commands.h"
#include "worker/engine/generator.h"
#include "worker/engine/llama_runner.h"

namespace ringserve::tools {
namespace {

using nlohmann::json;

absl::StatusOr<engine::JobRequest> TurnRequest(const json& line,
                                               const tokenizer::Tokenizer& tokenizer) {
  engine::JobRequest r;
  r.session_id = line.value("session", "");
  r.append = line.value("append", false);
  tokenizer::EncodeOptions encode;
  if (r.append) encode.add_bos = false;
  r.tokens = tokenizer.Encode(line.value("text", ""), encode);
  r.max_tokens = line.value("max_tokens", 32);
  r.sampling.temperature = line.value("temperature", 0.0F);
  r.sampling.top_p = line.value("top_p", 1.0F);
  r.sampling.seed = line.value("seed", uint64_t{0});
  r.ignore_eos = line.value("ignore_eos", false);
  if (line.contains("stop")) r.stop_strings = line["stop"].get<std::vector<std::string>>();
  return r;
}

json RunTurn(engine::Generator& generator, const json& line, const tokenizer::Tokenizer& tok) {
  json out = {{"session", line.value("session", "")}};
  absl::StatusOr<engine::JobRequest> request = TurnRequest(line, tok);
  absl::StatusOr<engine::JobHandle> handle =
      request.ok() ? generator.Submit(*std::move(request)) : request.status();
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

json RunLine(engine::Generator& generator, const json& line, const tokenizer::Tokenizer& tok) {
  if (line.contains("fork")) {
    const std::string id = line["fork"].get<std::string>();
    absl::StatusOr<std::vector<std::string>> forks = generator.Fork(id, line.value("n", 1));
    if (!forks.ok()) return {{"fork", id}, {"error", forks.status().ToString()}};
    return {{"forks", *forks}};
  }
  if (line.contains("close")) {
    const std::string id = line["close"].get<std::string>();
    absl::StatusOr<int32_t> n = generator.CloseSession(id);
    if (!n.ok()) return {{"close", id}, {"error", n.status().ToString()}};
    return {{"closed", id}, {"num_tokens", *n}};
  }
  return RunTurn(generator, line, tok);
}

}  // namespace

absl::Status RunSession(int argc, char** argv) {
  ModelFlags model_flags;
  std::string script;
  ArgParser parser;
  model_flags.Register(parser);
  parser.AddString("script", &script, "file of JSON lines: turns, forks, closes");
  RS_RETURN_IF_ERROR(parser.Parse(argc, argv));
  if (script.empty()) return absl::InvalidArgumentError("--script FILE is required");
  std::ifstream in(script);
  if (!in) return absl::NotFoundError(absl::StrCat(script, ": cannot open"));

  RS_ASSIGN_OR_RETURN(LoadedModel loaded, OpenModel(model_flags));
  if (loaded.tokenizer == nullptr) {
    return absl::FailedPreconditionError("the model has no tokenizer; give --tokenizer");
  }
  engine::LlamaRunnerOptions runner_options;
  runner_options.kv_memory = {.bytes = size_t{256} << 20};
  RS_ASSIGN_OR_RETURN(
      auto model,
      CreateModel(loaded, model_flags, engine::ToModelOptions(runner_options, *loaded.backend)));
  RS_ASSIGN_OR_RETURN(
      std::unique_ptr<engine::Generator> generator,
      engine::Generator::Create(std::make_unique<engine::LlamaRunner>(std::move(model)),
                                loaded.tokenizer.get(), {}));
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
    std::cout << RunLine(*generator, line, *loaded.tokenizer)
                     .dump(-1, ' ', false, json::error_handler_t::replace)
              << "\n";
  }
  return absl::OkStatus();
}

}  // namespace ringserve::tools
