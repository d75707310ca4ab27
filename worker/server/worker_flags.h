// ringserve-worker's command line. Every check that needs no model happens here, at
// parse time or in KvMemoryFor, so a bad value fails in milliseconds rather than after
// the model has loaded (seconds to minutes for a real one).
#ifndef RINGSERVE_WORKER_SERVER_WORKER_FLAGS_H_
#define RINGSERVE_WORKER_SERVER_WORKER_FLAGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/grpc/tls_credentials.h"
#include "tools/common/arg_parser.h"
#include "tools/common/http_api_flags.h"
#include "tools/common/model_setup.h"
#include "tools/common/speculation_flags.h"
#include "worker/engine/llama_runner.h"

namespace ringserve::server {

struct WorkerFlags {
  tools::ModelFlags model;
  int port = 50051;
  std::string host = "0.0.0.0";
  std::string id;
  std::string kv_memory;  // empty: 1GiB on the CPU, 0.9 of free memory on a GPU
  int kv_blocks = 0;
  std::string kv_host_memory;  // empty: no host tier (LlamaRunnerOptions::kv_host_memory_bytes)
  int block_size = 16;
  int max_seqs = 256;
  int max_sessions = 16384;
  int session_ttl_s = 1800;
  int max_queue = 4096;
  int max_pending_tokens = 4096;
  int sampling_threads = 0;       // GeneratorOptions::sampling_threads
  int prompt_logprob_rows = 256;  // GeneratorOptions::prompt_logprob_rows
  int metrics_port = 0;
  int drain_timeout_s = 30;
  tools::HttpApiFlags http_api;
  std::string auth_token_file;  // the HTTP API's bearer tokens (LoadTokens)
  int min_step_ms = 0;
  std::string chat_format = "auto";  // auto (the checkpoint's) or a ChatFormatName
  std::string lora_dir;  // GeneratorOptions::find_adapter looks here (model::FindLoraAdapter)
  tools::SpeculationFlags speculation;
  ServerTlsFiles tls;

  // One rule for the numbers: none may be negative, and 0 is refused too unless the
  // flag's help says what 0 means. Parse refuses a value outside its range by name.
  void Register(tools::ArgParser& args);
};

// --kv-memory: a bare number in (0, 1] is a share of the memory free after the weights,
// anything else a size (tools::ParseByteSize). INVALID_ARGUMENT naming the flag and text.
absl::StatusOr<engine::KvMemory> ParseKvMemory(absl::string_view text);

// --kv-memory, or its default for --device: 1GiB on the CPU, 0.9 of free memory on a GPU.
absl::StatusOr<engine::KvMemory> KvMemoryFor(const WorkerFlags& flags);

// --kv-host-memory in bytes: 0 when unset; INVALID_ARGUMENT naming the flag for a bad size.
absl::StatusOr<size_t> KvHostMemoryFor(const WorkerFlags& flags);

// INVALID_ARGUMENT when --http-port would open a plain-HTTP door beside a gRPC port that
// only takes clients with a certificate (--tls-client-ca), or --auth-token-file comes without
// the HTTP API it guards.
absl::Status CheckHttpApi(const WorkerFlags& flags);

// --lora-dir needs --max-loras (slots with room for adapters found later) and a directory
// that exists; INVALID_ARGUMENT or NOT_FOUND naming the flag.
absl::Status CheckLoraDir(const WorkerFlags& flags);

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_WORKER_FLAGS_H_
