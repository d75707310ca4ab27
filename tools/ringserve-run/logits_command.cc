// `ringserve-run logits`: the model's logits, for comparison with other implementations
// (tools/gpu/hf_compare.py, tools/gpu/vectors_check.py). For each sequence, one at a time:
// all but the last --decode-steps K tokens are prefilled (chunked by --max-batch-tokens),
// the last K are fed one per pass as decode steps (teacher forcing), then --generate N
// greedy tokens follow (K + G + 1 passes). Every pass's logits are written: row j of a
// sequence is the distribution after position first_position + j. One JSON line each:
//   {"index", "ids" (input + generated), "generated_ids", "first_position", "logits"}
#include <algorithm>
#include <fstream>
#include <iostream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "kvcache/sizing.h"
#include "nlohmann/json.hpp"
#include "tools/common/model_setup.h"
#include "tools/ringserve-run/commands.h"

namespace ringserve::tools {
namespace {

struct LogitsFlags {
  ModelFlags model;
  std::vector<std::string> prompts;
  std::vector<std::string> prompt_ids;
  int decode_steps = 0;
  int generate = 0;
  std::string out = "-";
  std::string adapter;  // a --lora adapter's name: its rows run with it
};

absl::StatusOr<std::vector<std::vector<int32_t>>> Sequences(const LogitsFlags& flags,
                                                            const LoadedModel& loaded) {
  std::vector<std::vector<int32_t>> seqs;
  for (const std::string& text : flags.prompt_ids) {
    RS_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseTokenIds(text, loaded.config.vocab_size));
    seqs.push_back(std::move(ids));
  }
  if (!flags.prompts.empty() && loaded.tokenizer == nullptr) {
    return absl::FailedPreconditionError("--prompt needs a tokenizer; give --prompt-ids instead");
  }
  for (const std::string& text : flags.prompts) seqs.push_back(loaded.tokenizer->Encode(text, {}));
  if (seqs.empty()) return absl::InvalidArgumentError("give at least one --prompt-ids or --prompt");
  for (const std::vector<int32_t>& ids : seqs) {
    if (static_cast<int>(ids.size()) <= flags.decode_steps) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a sequence of ", ids.size(), " tokens leaves nothing to prefill with --decode-steps ",
          flags.decode_steps));
    }
  }
  return seqs;
}

// Runs one sequence: prefill, then one pass per later position, the teacher-forced ones
// first, then greedy ones (each token the first maximum of the row before it). Appends one
// row of logits per pass: K + G + 1 rows for K decode steps and G generated tokens.
absl::Status RunSequence(model::LlamaModel& model, std::vector<int32_t>& ids, int decode_steps,
                         int generate, std::span<const int32_t> blocks, int32_t adapter,
                         std::vector<std::vector<float>>* rows) {
  const int chunk_tokens = model.options().max_batch_tokens;
  const int input = static_cast<int>(ids.size());
  const int prefill = input - decode_steps;
  std::vector<float> logits;
  for (int start = 0; start < prefill; start += chunk_tokens) {
    const int n = std::min(chunk_tokens, prefill - start);
    model::SequenceChunk chunk = {std::span(ids).subspan(start, n), start, blocks,
                                  start + n == prefill};
    chunk.adapter = adapter;
    RS_RETURN_IF_ERROR(model.Forward(std::span(&chunk, 1), &logits));
  }
  rows->push_back(logits);
  for (int position = prefill; position < input + generate; ++position) {
    if (position == static_cast<int>(ids.size())) {
      ids.push_back(
          static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    }
    model::SequenceChunk chunk = {std::span(ids).subspan(position, 1), position, blocks, true};
    chunk.adapter = adapter;
    RS_RETURN_IF_ERROR(model.Forward(std::span(&chunk, 1), &logits));
    rows->push_back(logits);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> ParseTokenIds(const std::string& text, int vocab_size) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, absl::ByAnyChar(", "), absl::SkipEmpty())) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(part, &id)) {
      return absl::InvalidArgumentError(absl::StrCat("--prompt-ids: bad token id '", part, "'"));
    }
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--prompt-ids: token id ", id, " is outside the vocabulary (", vocab_size, ")"));
    }
    ids.push_back(id);
  }
  if (ids.empty()) return absl::InvalidArgumentError("--prompt-ids: no token ids");
  return ids;
}

absl::Status RunLogits(int argc, char** argv, const BackendFactory& make_backend) {
  LogitsFlags flags;
  flags.model.make_backend = make_backend;
  ArgParser parser;
  flags.model.Register(parser);
  parser.AddRepeated("prompt", &flags.prompts, "prompt text (repeatable; needs a tokenizer)");
  parser.AddRepeated("prompt-ids", &flags.prompt_ids, "token ids, e.g. 1,450,29871 (repeatable)");
  parser.AddInt("decode-steps", &flags.decode_steps,
                "feed the last K tokens one per pass, as decode steps");
  parser.AddInt("generate", &flags.generate, "greedy tokens to add after the input");
  parser.AddString("out", &flags.out, "output file (- = stdout)");
  parser.AddString("adapter", &flags.adapter, "run with this LoRA adapter (a NAME of --lora)");
  RS_RETURN_IF_ERROR(parser.Parse(argc, argv));
  if (flags.decode_steps < 0 || flags.generate < 0) {
    return absl::InvalidArgumentError("--decode-steps and --generate must be >= 0");
  }
  RS_ASSIGN_OR_RETURN(LoadedModel loaded, OpenModel(flags.model));
  RS_ASSIGN_OR_RETURN(std::vector<std::vector<int32_t>> seqs, Sequences(flags, loaded));
  size_t longest = 0;
  for (const auto& ids : seqs) longest = std::max(longest, ids.size());
  // The last pass feeds position input + generate - 1, so that many tokens need K/V.
  const int64_t tokens = static_cast<int64_t>(longest) + flags.generate;
  if (tokens > loaded.config.max_seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("a sequence of ", longest, " tokens + --generate ", flags.generate,
                     " is beyond the model's context of ", loaded.config.max_seq_len, " tokens"));
  }
  model::ModelOptions options;
  options.max_seqs = 1;
  options.num_kv_blocks = static_cast<int>(kvcache::NumBlocksForTokens(tokens, options.block_size));
  RS_ASSIGN_OR_RETURN(auto model, CreateModel(loaded, flags.model, options));
  RS_ASSIGN_OR_RETURN(int32_t adapter, AdapterIndex(loaded, flags.adapter));
  if (adapter >= static_cast<int32_t>(LoraAdaptersInSlots(loaded, flags.model))) {
    // An adapter in host memory only (more --lora adapters than --max-loras): into slot 0.
    RS_ASSIGN_OR_RETURN(auto prepared, model->PrepareLoraAdapter(
                                           *loaded.lora_adapters[static_cast<size_t>(adapter)]));
    RS_RETURN_IF_ERROR(model->SetLoraAdapter(0, std::move(prepared)));
    adapter = 0;
  }
  std::vector<int32_t> blocks(static_cast<size_t>(options.num_kv_blocks));
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<int32_t>(i);

  std::ofstream file;
  if (flags.out != "-") {
    file.open(flags.out);
    if (!file) return absl::NotFoundError(absl::StrCat(flags.out, ": cannot write"));
  }
  std::ostream& out = flags.out == "-" ? std::cout : file;
  for (size_t i = 0; i < seqs.size(); ++i) {
    std::vector<int32_t> ids = seqs[i];
    std::vector<std::vector<float>> rows;
    RS_RETURN_IF_ERROR(
        RunSequence(*model, ids, flags.decode_steps, flags.generate, blocks, adapter, &rows));
    const nlohmann::json line = {
        {"index", i},
        {"ids", ids},
        {"generated_ids", std::vector<int32_t>(ids.begin() + seqs[i].size(), ids.end())},
        {"first_position", static_cast<int>(seqs[i].size()) - flags.decode_steps - 1},
        {"logits", rows}};
    out << line.dump() << "\n";
  }
  out.flush();
  return out ? absl::OkStatus() : absl::DataLossError(absl::StrCat(flags.out, ": write failed"));
}

}  // namespace ringserve::tools
