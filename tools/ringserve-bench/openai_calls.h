// ringserve-bench's requests over OpenAI's HTTP API (ringserve's router with --http-port, or
// any server that speaks it: vLLM, SGLang, llama.cpp's server): a Generate becomes a streamed
// /v1/completions of the same token ids, an Embed a /v1/embeddings. The same workload then
// measures the HTTP path, or another server, beside ringserve's gRPC API.
#ifndef RINGSERVE_TOOLS_RINGSERVE_BENCH_OPENAI_CALLS_H_
#define RINGSERVE_TOOLS_RINGSERVE_BENCH_OPENAI_CALLS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/http/http_client.h"
#include "common/http/sse_parser.h"
#include "ringserve/v1/inference.pb.h"
#include "tools/ringserve-bench/bench_call.h"

namespace ringserve::tools::bench {

struct OpenAiCallOptions {
  // The "model" of requests without an adapter (a request's adapter is its model).
  std::string model;
  // Sent as "Authorization: Bearer <token>" when not empty.
  std::string token;
  double timeout_s = 0;  // > 0: each request's deadline
  // Replies must come back as ids (return_token_ids): the driver resends conversations.
  bool need_ids = false;
};

// The /v1/completions body of a Generate request: the prompt as ids, max_tokens, ignore_eos,
// streamed with the usage chunk and the generated ids (vLLM's return_token_ids); a session's
// fields and a regex as ringserve's and vLLM's extra parameters.
std::string CompletionBody(const ringserve::v1::GenerateRequest& request, const std::string& model);
// The /v1/embeddings body of an Embed request: each input's ids, base64-encoded floats back.
std::string EmbeddingBody(const ringserve::v1::EmbedRequest& request, const std::string& model);

// The gRPC code an HTTP error status stands for (ringserve's own errors name theirs in
// "error.code"; ErrorOf reads that first).
grpc::StatusCode CodeOfHttpStatus(int status);
// The code and message of an OpenAI error object's JSON text ({"error": {...}}), else of the
// HTTP status with the text itself as the message.
void ErrorOf(int http_status, absl::string_view body, RequestResult& result);

// Common to both calls: the request, the client that carries it and the response's head.
// Owner: LoadDriver (see BenchCall). Thread: Start() on the driver's; the handler's calls on
// the HTTP client's thread.
class OpenAiCall : public BenchCall, public http::HttpResponseHandler {
 public:
  OpenAiCall(int index, http::HttpClient* client, http::HttpClientRequest request,
             OnCallDone on_done);
  void Start() override;
  RequestResult& result() override { return result_; }

  void OnHead(const http::HttpResponseHead& head) override;
  void OnBody(absl::string_view bytes) override;
  void OnDone(const absl::Status& status) override;

 protected:
  // A successful response's body bytes as they arrive.
  virtual void OnOkBody(absl::string_view bytes) = 0;
  // A successful response has ended; sets result_.code (and message when not OK).
  virtual void Conclude() = 0;

  RequestResult result_;

 private:
  http::HttpClient* const client_;
  const http::HttpClientRequest request_;
  const OnCallDone on_done_;
  int http_status_ = 0;
  std::string error_body_;  // a failed response's body
};

// A streamed completion: Server-Sent Events of chunks, timed as they arrive.
class OpenAiStreamCall final : public OpenAiCall {
 public:
  OpenAiStreamCall(int index, http::HttpClient* client, const ringserve::v1::GenerateRequest& g,
                   const OpenAiCallOptions& options, OnCallDone on_done);

 private:
  void OnOkBody(absl::string_view bytes) override;
  void Conclude() override;
  void OnChunk(const std::string& data);

  const bool need_ids_;
  http::SseParser events_parser_;
  std::vector<http::SseEvent> events_;
  bool saw_done_ = false;
  bool saw_finish_ = false;
  bool saw_usage_ = false;
  int completion_tokens_ = 0;
  // An error event in the stream ("data: {"error": ...}"): the call failed mid-way.
  bool failed_ = false;
};

class OpenAiEmbedCall final : public OpenAiCall {
 public:
  OpenAiEmbedCall(int index, http::HttpClient* client, const ringserve::v1::EmbedRequest& e,
                  const OpenAiCallOptions& options, OnCallDone on_done);

 private:
  void OnOkBody(absl::string_view bytes) override { body_.append(bytes.data(), bytes.size()); }
  void Conclude() override;

  const int inputs_;
  std::string body_;
};

}  // namespace ringserve::tools::bench

#endif  // RINGSERVE_TOOLS_RINGSERVE_BENCH_OPENAI_CALLS_H_
