// `ringserve-cli embed`: embeddings of texts or token ids (Inference.Embed).
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "ringserve/v1/inference.grpc.pb.h"
#include "tools/ringserve-cli/cli.h"

namespace ringserve::tools::cli {

absl::Status RunEmbed(CommandArgs args) {
  std::vector<std::string> texts;
  std::vector<std::string> token_lists;
  int dimensions = 0;
  bool raw = false;
  int truncate = 0;
  std::string adapter;
  ArgParser parser;
  parser.AddRepeated("text", &texts, "a text to embed (repeatable)");
  parser.AddRepeated("tokens", &token_lists, "token ids to embed, as 1,2,3 (repeatable)");
  parser.AddInt("dimensions", &dimensions, "keep the first N values (0: all)", {.min = 0});
  parser.AddBool("raw", &raw, "the hidden state as it is, not scaled to unit length");
  parser.AddInt("truncate-prompt-tokens", &truncate,
                "keep each input's last N tokens (-1: as many as the context holds)", {.min = -1});
  parser.AddString("adapter", &adapter, "embed with this LoRA adapter of the worker's");
  RS_RETURN_IF_ERROR(ParseCommand(
      "usage: ringserve-cli embed (--text T | --tokens 1,2,3)... [--dimensions N] [--raw]\n"
      "       [--truncate-prompt-tokens N] [--adapter NAME] [--json]",
      args, parser));
  if (texts.empty() && token_lists.empty()) {
    return UsageError(absl::InvalidArgumentError("give --text or --tokens at least once"));
  }
  ringserve::v1::EmbedRequest request;
  for (const std::string& text : texts) request.add_inputs()->set_text(text);
  for (const std::string& list : token_lists) {
    absl::Status parsed = ParseTokenIds(list, request.add_inputs()->mutable_tokens());
    if (!parsed.ok()) return UsageError(parsed);
  }
  request.set_dimensions(dimensions);
  if (raw) request.set_normalize(false);
  if (parser.IsSet("truncate-prompt-tokens")) request.set_truncate_prompt_tokens(truncate);
  request.set_adapter(adapter);
  RS_ASSIGN_OR_RETURN(auto response,
                      Unary<ringserve::v1::Inference>(
                          args.common, &ringserve::v1::Inference::Stub::Embed, request));
  if (args.common.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const ringserve::v1::Embedding& e : response.embeddings()) {
      out.push_back({{"values", e.values()},
                     {"prompt_tokens", e.prompt_tokens()},
                     {"cached_tokens", e.cached_tokens()},
                     {"truncated_tokens", e.truncated_tokens()}});
    }
    PrintJson({{"embeddings", out}});
    return absl::OkStatus();
  }
  // One line an input, in order (texts first, then token lists): its values.
  for (const ringserve::v1::Embedding& e : response.embeddings()) {
    std::cout << absl::StrJoin(e.values(), " ") << "\n";
  }
  return absl::OkStatus();
}

}  // namespace ringserve::tools::cli
