#include "tools/common/http_api_flags.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ringserve::tools {

void HttpApiFlags::Register(ArgParser& parser, const std::string& default_name) {
  parser.AddInt("http-port", &http_port,
                "serve OpenAI's HTTP API (/v1/chat/completions, /v1/completions, "
                "/v1/embeddings, /v1/models, /tokenize, /detokenize, /metrics) on this port "
                "(0 = off)",
                {.min = 0, .max = 65535});
  parser.AddString("served-model-name", &served_model_name,
                   absl::StrCat("the model's name in the HTTP API's /v1/models and \"model\" "
                                "(default: ",
                                default_name, ")"));
  parser.AddString("http-allowed-origins", &allowed_origins,
                   "web origins whose pages may call the HTTP API from a browser (CORS), comma-"
                   "separated, e.g. https://app.example.com; * allows any (default: none)");
}

openai::OpenAiFrontOptions HttpApiFlags::FrontOptions() const {
  openai::OpenAiFrontOptions options;
  options.port = http_port;
  options.gateway.served_model_name = served_model_name;
  if (!allowed_origins.empty()) {
    options.gateway.allowed_origins = absl::StrSplit(allowed_origins, ',');
  }
  return options;
}

}  // namespace ringserve::tools
