// `ringserve-run --model PATH --prompt TEXT ...`: generate for every prompt in one batch
// (or one at a time with --sequential) and print the results. --prompt-ids gives a prompt
// as token ids (no tokenizer needed; without one, no text is printed).
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/common/model_setup.h"
#include "tools/ringserve-run/commands.h"
#include "worker/engine/offline_batch.h"
#include "worker/tokenizer/stream_decoder.h"

namespace ringserve::tools {
namespace {

using engine::OfflineKvBlocks;
using engine::OfflineRequest;
using engine::OfflineResult;
using engine::OfflineTimings;
using engine::RunOfflineBatch;

struct RunFlags {
  ModelFlags model;
  std::vector<std::string> prompts;
  std::vector<std::string> prompt_ids;  // after the text prompts, in order
  std::string prompts_file;
  int max_tokens = 64;
  double temperature = 0.0;
  int top_k = 0;
  double top_p = 1.0;
  double min_p = 0.0;
  bool json = false;
  bool sequential = false;
  bool ignore_eos = false;
};

absl::Status ReadPromptsFile(const std::string& path, std::vector<std::string>* prompts) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open prompts file"));
  std::string line;
  while (std::getline(in, line)) prompts->push_back(line);
  return absl::OkStatus();
}

std::string DecodeGenerated(const tokenizer::Tokenizer& tok, int32_t previous,
                            const std::vector<int32_t>& ids) {
  tokenizer::StreamDecoder decoder(tok, previous);
  std::string text;
  for (int32_t id : ids) text += decoder.Push(id);
  return text + decoder.Flush();
}

absl::StatusOr<std::vector<OfflineRequest>> BuildRequests(const RunFlags& flags,
                                                          const LoadedModel& loaded) {
  if (loaded.tokenizer == nullptr && !flags.prompts.empty()) {
    return absl::FailedPreconditionError(
        "the model has no tokenizer; pass --tokenizer PATH or give --prompt-ids");
  }
  engine::SamplingParams sampling;
  sampling.temperature = static_cast<float>(flags.temperature);
  sampling.top_k = flags.top_k;
  sampling.top_p = static_cast<float>(flags.top_p);
  sampling.min_p = static_cast<float>(flags.min_p);
  sampling.seed = static_cast<uint64_t>(flags.model.seed);
  RS_RETURN_IF_ERROR(engine::ValidateSamplingParams(sampling));
  std::vector<OfflineRequest> requests;
  for (const std::string& prompt : flags.prompts) {
    OfflineRequest r;
    r.prompt_ids = loaded.tokenizer->Encode(prompt, {});
    if (r.prompt_ids.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt '", prompt, "' encodes to no tokens and the model adds no BOS"));
    }
    requests.push_back(std::move(r));
  }
  for (const std::string& text : flags.prompt_ids) {
    OfflineRequest r;
    RS_ASSIGN_OR_RETURN(r.prompt_ids, ParseTokenIds(text, loaded.config.vocab_size));
    requests.push_back(std::move(r));
  }
  for (OfflineRequest& r : requests) {
    r.sampling = sampling;
    r.max_tokens = flags.max_tokens;
    if (!flags.ignore_eos && loaded.tokenizer != nullptr) {
      r.stop_ids = loaded.tokenizer->EndOfGenerationIds();
    }
  }
  return requests;
}

}  // namespace

absl::Status RunGenerate(int argc, char** argv) {
  RunFlags flags;
  ArgParser parser;
  flags.model.Register(parser);
  parser.AddRepeated("prompt", &flags.prompts, "prompt text (repeatable)");
  parser.AddString("prompts-file", &flags.prompts_file, "file with one prompt per line");
  parser.AddRepeated("prompt-ids", &flags.prompt_ids,
                     "prompt as token ids, e.g. 1,450 (repeatable)");
  parser.AddInt("max-tokens", &flags.max_tokens, "tokens to generate per prompt");
  parser.AddFloat("temperature", &flags.temperature, "0 = greedy");
  parser.AddInt("top-k", &flags.top_k, "0 = off");
  parser.AddFloat("top-p", &flags.top_p, "nucleus mass in (0, 1]");
  parser.AddFloat("min-p", &flags.min_p, "min probability relative to the top token");
  parser.AddBool("json", &flags.json, "one JSON object per prompt");
  parser.AddBool("sequential", &flags.sequential, "run prompts one at a time");
  parser.AddBool("ignore-eos", &flags.ignore_eos, "do not stop at end-of-generation tokens");
  RS_RETURN_IF_ERROR(parser.Parse(argc, argv));
  if (!flags.prompts_file.empty())
    RS_RETURN_IF_ERROR(ReadPromptsFile(flags.prompts_file, &flags.prompts));
  if (flags.prompts.empty() && flags.prompt_ids.empty()) {
    return absl::InvalidArgumentError("give at least one --prompt or --prompt-ids");
  }
  if (flags.max_tokens < 0) return absl::InvalidArgumentError("--max-tokens must be >= 0");

  RS_ASSIGN_OR_RETURN(LoadedModel loaded, OpenModel(flags.model));
  RS_ASSIGN_OR_RETURN(std::vector<OfflineRequest> requests, BuildRequests(flags, loaded));
  model::ModelOptions options;
  options.num_kv_blocks = static_cast<int>(OfflineKvBlocks(requests, options.block_size));
  options.max_seqs = static_cast<int>(requests.size());
  RS_ASSIGN_OR_RETURN(auto model, CreateModel(loaded, flags.model, options));

  std::vector<OfflineResult> results;
  if (flags.sequential) {
    for (const OfflineRequest& r : requests) {
      RS_ASSIGN_OR_RETURN(auto one, RunOfflineBatch(*model, std::span(&r, 1)));
      results.push_back(std::move(one[0]));
    }
  } else {
    RS_ASSIGN_OR_RETURN(results, RunOfflineBatch(*model, requests));
  }
  for (size_t i = 0; i < results.size(); ++i) {
    const std::string text = loaded.tokenizer == nullptr
                                 ? ""
                                 : DecodeGenerated(*loaded.tokenizer, requests[i].prompt_ids.back(),
                                                   results[i].generated_ids);
    const std::string& prompt =
        i < flags.prompts.size() ? flags.prompts[i] : flags.prompt_ids[i - flags.prompts.size()];
    if (flags.json) {
      nlohmann::json j = {{"prompt", prompt},
                          {"prompt_ids", requests[i].prompt_ids},
                          {"generated_ids", results[i].generated_ids},
                          {"text", text},
                          {"finish_reason", results[i].finish_reason}};
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      std::cout << prompt << text << "\n";
    }
  }
  return absl::OkStatus();
}

}  // namespace ringserve::tools
