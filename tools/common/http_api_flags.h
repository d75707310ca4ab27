// --http-port and its companions, shared by ringserve-router and ringserve-worker: OpenAI's
// HTTP API served beside the binary's gRPC API (openai::OpenAiFront).
#ifndef RINGSERVE_TOOLS_COMMON_HTTP_API_FLAGS_H_
#define RINGSERVE_TOOLS_COMMON_HTTP_API_FLAGS_H_

#include <string>

#include "common/openai/openai_front.h"
#include "tools/common/arg_parser.h"

namespace ringserve::tools {

struct HttpApiFlags {
  int http_port = 0;  // 0: no HTTP API
  std::string served_model_name;
  std::string allowed_origins;  // comma-separated; "*": any

  // `default_name` says what --served-model-name defaults to, in words.
  void Register(ArgParser& parser, const std::string& default_name);
  // The front's options from these flags (its host, body limit and metrics are the caller's).
  openai::OpenAiFrontOptions FrontOptions() const;
};

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_COMMON_HTTP_API_FLAGS_H_
