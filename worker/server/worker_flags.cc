#include "worker/server/worker_flags.h"

#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tools/common/byte_size.h"

namespace ringserve::server {

void WorkerFlags::Register(tools::ArgParser& args) {
  constexpr tools::IntRange kPort = {.min = 0, .max = 65535};
  constexpr tools::IntRange kZeroMeansSomething = {.min = 0};
  constexpr tools::IntRange kPositive = {.min = 1};
  model.Register(args);
  args.AddInt("port", &port, "gRPC port (default 50051; 0 picks a free one)", kPort);
  args.AddString("host", &host, "address to listen on (default 0.0.0.0)");
  args.AddString("id", &id, "worker id in responses and metrics (default host-pid)");
  args.AddString("kv-memory", &kv_memory,
                 "KV pool: a size (2GiB, 1.5GiB, 512MiB, 1GB, bytes) or a share of the memory "
                 "free after the weights (0.9); default 1GiB on the CPU, 0.9 on a GPU");
  args.AddInt("kv-blocks", &kv_blocks, "KV pool in blocks (0, the default: sized by --kv-memory)",
              kZeroMeansSomething);
  args.AddString("kv-host-memory", &kv_host_memory,
                 "host memory that keeps KV blocks the pool evicts, copied back when a prompt "
                 "needs them again (a size: 64GiB; default none)");
  args.AddInt("block-size", &block_size, "tokens per KV block (16)", kPositive);
  args.AddInt("max-seqs", &max_seqs, "most sequences per step (256)", kPositive);
  args.AddInt("max-sessions", &max_sessions, "most live sessions; LRU beyond (16384)", kPositive);
  args.AddInt("session-ttl-s", &session_ttl_s, "idle session lifetime (1800)", kPositive);
  args.AddInt("max-queue", &max_queue,
              "most admitted unfinished requests; beyond: RESOURCE_EXHAUSTED (4096)", kPositive);
  args.AddInt("max-pending-tokens", &max_pending_tokens,
              "tokens a slow reader may fall behind before its request is cancelled (4096)",
              kPositive);
  args.AddInt("sampling-threads", &sampling_threads,
              "threads that sample a step's rows, the engine's included (0, the default: one "
              "per core, at most 8, on a GPU; 1 on the CPU; up to 256)",
              tools::IntRange{.min = 0, .max = 256});
  args.AddInt("prompt-logprob-rows", &prompt_logprob_rows,
              "logits rows kept for scoring prompts (requests with prompt_logprobs), each the "
              "vocabulary's size in f32 on the device and in host memory; a step scores as many "
              "prompt tokens as these and the unused --speculate rows allow (256; 0 without "
              "--speculate refuses such requests)",
              tools::IntRange{.min = 0, .max = 65536});
  args.AddInt("metrics-port", &metrics_port, "Prometheus /metrics port (0, the default: off)",
              kPort);
  http_api.Register(args, "the model's name, as GetModelInfo reports it");
  args.AddString("auth-token-file", &auth_token_file,
                 "with --http-port: accepted bearer tokens, one per line ('#' comments), that "
                 "every HTTP API request but /health and /metrics needs; default: the env "
                 "RINGSERVE_AUTH_TOKEN; neither: none. The gRPC port is not covered: "
                 "--tls-client-ca secures it");
  args.AddInt("drain-timeout-s", &drain_timeout_s,
              "on SIGTERM, how long admitted requests may take (30; 0 cancels them at once)",
              kZeroMeansSomething);
  args.AddInt("min-step-ms", &min_step_ms,
              "pace the engine: each step lasts at least this long (fault tests, demos; 0, the "
              "default: no pacing)",
              kZeroMeansSomething);
  args.AddString("chat-format", &chat_format,
                 "how chat requests are rendered: auto (the default: the checkpoint's chat "
                 "template, if it is ChatML, Llama 3's, Llama 2's, Mistral's or DeepSeek's), "
                 "chatml, llama3, llama3.1, llama3.2, llama2, mistral, deepseek, zephyr or none");
  args.AddString("lora-dir", &lora_dir,
                 "with --max-loras: a directory of LoRA adapters, each found by the name a "
                 "request gives (DIR/NAME, a PEFT directory, or DIR/NAME.gguf) the first time "
                 "one asks for it, off the engine thread, and kept in host memory up to "
                 "--max-cpu-loras (the least recently used found one makes room)");
  speculation.Register(args);
  args.AddString("tls-cert", &tls.cert_path, "PEM certificate chain: serve TLS");
  args.AddString("tls-key", &tls.key_path, "PEM private key of --tls-cert");
  args.AddString("tls-client-ca", &tls.client_ca_path,
                 "PEM CA: only clients (routers) with a certificate it signed get in (mTLS)");
}

absl::StatusOr<engine::KvMemory> ParseKvMemory(absl::string_view text) {
  double number = 0;
  if (tools::IsPlainDecimal(text) && absl::SimpleAtod(text, &number)) {
    if (number > 0 && number <= 1) return engine::KvMemory{.fraction_of_free = number};
    // "1.5" was once taken for 1 byte: a bare number is a share or a whole byte count.
    if (number <= 0 || absl::StrContains(text, '.')) {
      return absl::InvalidArgumentError(absl::StrCat("--kv-memory: '", text,
                                                     "' is neither a share of free memory in "
                                                     "(0, 1] nor a size (bytes, or 1.5GiB)"));
    }
  }
  RS_ASSIGN_OR_RETURN(const int64_t bytes, tools::ParseByteSize(text, "kv-memory"));
  return engine::KvMemory{.bytes = static_cast<size_t>(bytes)};
}

absl::StatusOr<engine::KvMemory> KvMemoryFor(const WorkerFlags& flags) {
  if (!flags.kv_memory.empty()) return ParseKvMemory(flags.kv_memory);
  return flags.model.device == "cpu" ? engine::KvMemory{.bytes = size_t{1} << 30}
                                     : engine::KvMemory{.fraction_of_free = 0.9};
}

absl::StatusOr<size_t> KvHostMemoryFor(const WorkerFlags& flags) {
  if (flags.kv_host_memory.empty()) return 0;
  RS_ASSIGN_OR_RETURN(const int64_t bytes,
                      tools::ParseByteSize(flags.kv_host_memory, "kv-host-memory"));
  return static_cast<size_t>(bytes);
}

absl::Status CheckHttpApi(const WorkerFlags& flags) {
  if (flags.http_api.http_port == 0 && !flags.auth_token_file.empty()) {
    return absl::InvalidArgumentError(
        "--auth-token-file guards the HTTP API: it needs --http-port");
  }
  if (flags.http_api.http_port != 0 && !flags.tls.client_ca_path.empty()) {
    return absl::InvalidArgumentError(
        "--http-port serves plain HTTP to any client, which --tls-client-ca is there to "
        "prevent: serve the HTTP API from the router instead");
  }
  return absl::OkStatus();
}

absl::Status CheckLoraDir(const WorkerFlags& flags) {
  if (flags.lora_dir.empty()) return absl::OkStatus();
  if (flags.model.max_loras == 0) {
    return absl::InvalidArgumentError(
        "--lora-dir: needs --max-loras (slots with room for the adapters it holds)");
  }
  std::error_code error;
  if (!std::filesystem::is_directory(flags.lora_dir, error)) {
    return absl::NotFoundError(absl::StrCat("--lora-dir: ", flags.lora_dir, " is no directory"));
  }
  return absl::OkStatus();
}

}  // namespace ringserve::server
