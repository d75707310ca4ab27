// `ringserve-cli tokenize`, `info`, `stats`, `drain` and `health`: calls about the server
// rather than a session.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "ringserve/v1/admin.grpc.pb.h"
#include "ringserve/v1/inference.grpc.pb.h"
#include "tools/ringserve-cli/chat_tools.h"
#include "tools/ringserve-cli/cli.h"

namespace ringserve::tools::cli {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using ringserve::v1::Admin;
using ringserve::v1::Inference;

// Protobuf's own renderings: proto3 JSON (field names as in the .proto; int64 values
// are strings, as that mapping requires) or text format.
absl::Status PrintMessage(const google::protobuf::Message& message, bool json) {
  std::string out;
  if (json) {
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    options.always_print_primitive_fields = true;
    if (auto s = google::protobuf::util::MessageToJsonString(message, &out, options); !s.ok()) {
      return absl::InternalError(std::string(s.message()));
    }
    out += "\n";
  } else {
    google::protobuf::TextFormat::PrintToString(message, &out);
  }
  std::cout << out;
  return absl::OkStatus();
}

void PrintWorkerStats(const ringserve::v1::WorkerStats& w) {
  const auto& kv = w.kv_cache();
  const auto& b = w.batches();
  const double hit = kv.prompt_tokens_total() > 0
                         ? 100.0 * kv.cache_hit_tokens_total() / kv.prompt_tokens_total()
                         : 0.0;
  std::cout << absl::StrFormat("worker %s%s up %.0f s%s\n", w.worker_id(),
                               w.address().empty() ? "" : " (" + w.address() + ")", w.uptime_s(),
                               w.draining() ? " DRAINING" : "");
  std::cout << absl::StrFormat(
      "  kv blocks: %d used, %d cached, %d free of %d (%d tokens each); cache hits %d of %d "
      "prompt tokens (%.1f%%)\n",
      kv.blocks_used(), kv.blocks_cached(), kv.blocks_free(), kv.blocks_total(),
      kv.block_size_tokens(), kv.cache_hit_tokens_total(), kv.prompt_tokens_total(), hit);
  if (kv.host_blocks_total() > 0) {
    std::cout << absl::StrFormat(
        "  kv host tier: %d of %d blocks hold evicted K/V; %d copied out, %d prompt tokens "
        "copied back\n",
        kv.host_blocks_stored(), kv.host_blocks_total(), kv.offloaded_blocks_total(),
        kv.host_hit_tokens_total());
  }
  std::cout << absl::StrFormat(
      "  requests: %d running, %d waiting (queue %d); %d sessions; %d finished, %d tokens "
      "generated, %d preemptions\n",
      w.running_requests(), w.waiting_requests(), w.queue_capacity(), w.sessions(),
      w.requests_total(), w.generated_tokens_total(), w.preemptions_total());
  if (w.draft_tokens_total() > 0) {
    std::cout << absl::StrFormat(
        "  speculative decoding: %d of %d draft tokens accepted (%.1f%%)\n",
        w.accepted_draft_tokens_total(), w.draft_tokens_total(),
        100.0 * static_cast<double>(w.accepted_draft_tokens_total()) /
            static_cast<double>(w.draft_tokens_total()));
  }
  if (w.adapter_swaps_total() > 0 || w.waiting_for_adapter() > 0) {
    std::cout << absl::StrFormat(
        "  LoRA adapters: %d requests waiting for a slot; %d written into a slot from host "
        "memory\n",
        w.waiting_for_adapter(), w.adapter_swaps_total());
  }
  std::cout << absl::StrFormat(
      "  last %.0f s: %d steps, %.1f seqs and %.1f tokens per step, %.2f ms per step, prefill "
      "%.0f tok/s, generate %.0f tok/s\n",
      b.window_s(), b.steps(), b.mean_sequences(), b.mean_tokens(), b.mean_step_ms(),
      b.prefill_tokens_per_s(), b.generated_tokens_per_s());
}

}  // namespace

absl::Status RunTokenize(CommandArgs args) {
  ringserve::v1::TokenizeRequest request;
  std::string text;
  bool add_special = false;
  std::vector<std::string> messages;
  std::string tools;
  bool append = false;
  bool continue_final = false;
  ArgParser parser;
  parser.AddString("text", &text, "the text to tokenize");
  parser.AddBool("add-special-tokens", &add_special, "prepend BOS as a new context would");
  parser.AddRepeated("message", &messages,
                     "ROLE:TEXT, repeated: a conversation, rendered as a chat request's prompt");
  parser.AddString("tools", &tools, "with --message: the tools the chat offers (a JSON file)");
  parser.AddBool("append", &append, "with --message: render a session's next turn");
  parser.AddBool("continue", &continue_final,
                 "with --message: the last message is the start of the reply");
  RS_RETURN_IF_ERROR(
      ParseCommand("usage: ringserve-cli tokenize (--text T [--add-special-tokens] |\n"
                   "       --message ROLE:TEXT... [--tools FILE] [--append] [--continue]) [--json]",
                   args, parser));
  if (parser.IsSet("text") == !messages.empty()) {
    return UsageError(absl::InvalidArgumentError("give one of --text and --message"));
  }
  if (messages.empty() && (!tools.empty() || append || continue_final)) {
    return UsageError(
        absl::InvalidArgumentError("--tools, --append and --continue need --message"));
  }
  request.set_text(text);
  request.set_add_special_tokens(add_special);
  if (!messages.empty()) {
    absl::Status chat = AddMessages(messages, request.mutable_chat());
    if (chat.ok() && !tools.empty()) chat = AddTools(tools, "", request.mutable_chat());
    if (!chat.ok()) return UsageError(chat);
    request.mutable_chat()->set_continue_final_message(continue_final);
    request.set_append(append);
  }
  RS_ASSIGN_OR_RETURN(auto response,
                      Unary<Inference>(args.common, &Inference::Stub::Tokenize, request));
  if (args.common.json) {
    PrintJson({{"token_ids", response.token_ids()}, {"pieces", response.pieces()}});
    return absl::OkStatus();
  }
  for (int i = 0; i < response.token_ids_size(); ++i) {
    const std::string piece = i < response.pieces_size() ? response.pieces(i) : "";
    std::cout << response.token_ids(i) << "\t"
              << nlohmann::json(piece).dump(-1, ' ', false,
                                            nlohmann::json::error_handler_t::replace)
              << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunDetokenize(CommandArgs args) {
  std::string ids;
  bool skip_special = false;
  ArgParser parser;
  parser.AddString("ids", &ids, "the token ids, separated by commas or spaces");
  parser.AddBool("skip-special-tokens", &skip_special,
                 "leave out control tokens (BOS, chat markers) rather than write their text");
  RS_RETURN_IF_ERROR(ParseCommand(
      "usage: ringserve-cli detokenize --ids ID,ID,... [--skip-special-tokens] [--json]", args,
      parser));
  ringserve::v1::DetokenizeRequest request;
  for (const absl::string_view id : absl::StrSplit(ids, absl::ByAnyChar(", "), absl::SkipEmpty())) {
    int32_t value = 0;
    if (!absl::SimpleAtoi(id, &value)) {
      return UsageError(absl::InvalidArgumentError(absl::StrCat("--ids: '", id, "' is not an id")));
    }
    request.add_token_ids(value);
  }
  request.set_skip_special_tokens(skip_special);
  RS_ASSIGN_OR_RETURN(auto response,
                      Unary<Inference>(args.common, &Inference::Stub::Detokenize, request));
  if (args.common.json) {
    PrintJson({{"text", response.text()}});
  } else {
    std::cout << response.text() << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunInfo(CommandArgs args) {
  ArgParser parser;
  RS_RETURN_IF_ERROR(ParseCommand("usage: ringserve-cli info [--json]", args, parser));
  RS_ASSIGN_OR_RETURN(auto info, Unary<Inference>(args.common, &Inference::Stub::GetModelInfo,
                                                  ringserve::v1::GetModelInfoRequest()));
  return PrintMessage(info, args.common.json);
}

absl::Status RunLoadAdapter(CommandArgs args) {
  ringserve::v1::LoadAdapterRequest request;
  std::string name, path;
  ArgParser parser;
  parser.AddString("name", &name, "the name requests use (GenerateRequest.adapter)");
  parser.AddString("path", &path, "the PEFT directory, on the workers' filesystem");
  RS_RETURN_IF_ERROR(ParseCommand(
      "usage: ringserve-cli load-adapter --name NAME --path DIR [--json]", args, parser));
  if (name.empty() || path.empty()) {
    return UsageError(absl::InvalidArgumentError("give --name and --path"));
  }
  request.set_name(name);
  request.set_path(path);
  RS_ASSIGN_OR_RETURN(auto response, Unary<Admin>(args.common, &Admin::Stub::LoadAdapter, request));
  return PrintMessage(response, args.common.json);
}

absl::Status RunUnloadAdapter(CommandArgs args) {
  ringserve::v1::UnloadAdapterRequest request;
  std::string name;
  ArgParser parser;
  parser.AddString("name", &name, "the adapter's name");
  RS_RETURN_IF_ERROR(
      ParseCommand("usage: ringserve-cli unload-adapter --name NAME [--json]", args, parser));
  if (name.empty()) return UsageError(absl::InvalidArgumentError("give --name"));
  request.set_name(name);
  RS_ASSIGN_OR_RETURN(auto response,
                      Unary<Admin>(args.common, &Admin::Stub::UnloadAdapter, request));
  return PrintMessage(response, args.common.json);
}

absl::Status RunStats(CommandArgs args) {
  ArgParser parser;
  RS_RETURN_IF_ERROR(ParseCommand("usage: ringserve-cli stats [--json]", args, parser));
  RS_ASSIGN_OR_RETURN(auto stats, Unary<Admin>(args.common, &Admin::Stub::GetStats,
                                               ringserve::v1::GetStatsRequest()));
  if (args.common.json) return PrintMessage(stats, true);
  for (const auto& worker : stats.workers()) PrintWorkerStats(worker);
  for (const std::string& missing : stats.unreachable_workers()) {
    std::cout << "unreachable: " << missing << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunDrain(CommandArgs args) {
  ringserve::v1::DrainRequest request;
  bool wait = false;
  ArgParser parser;
  parser.AddBool("wait", &wait, "reply only when every admitted call has finished");
  RS_RETURN_IF_ERROR(
      ParseCommand("usage: ringserve-cli drain [--wait] [--timeout-s S] [--json]", args, parser));
  request.set_wait(wait);
  RS_ASSIGN_OR_RETURN(auto response, Unary<Admin>(args.common, &Admin::Stub::Drain, request));
  if (args.common.json) {
    PrintJson({{"remaining_requests", response.remaining_requests()}});
  } else {
    std::cout << "draining; " << response.remaining_requests() << " requests still running\n";
  }
  return absl::OkStatus();
}

absl::Status RunHealth(CommandArgs args) {
  HealthCheckRequest request;
  std::string service;
  ArgParser parser;
  parser.AddString("service", &service, "service name to check (default: the whole server)");
  RS_RETURN_IF_ERROR(
      ParseCommand("usage: ringserve-cli health [--service NAME] [--json]\n"
                   "exits 0 only when the server answers SERVING",
                   args, parser));
  request.set_service(service);
  RS_ASSIGN_OR_RETURN(auto response, Unary<Health>(args.common, &Health::Stub::Check, request));
  const std::string name = HealthCheckResponse::ServingStatus_Name(response.status());
  if (args.common.json) {
    PrintJson({{"status", name}});
  } else {
    std::cout << name << "\n";
  }
  if (response.status() == HealthCheckResponse::SERVING) return absl::OkStatus();
  return absl::UnavailableError("health: " + name);
}

}  // namespace ringserve::tools::cli
