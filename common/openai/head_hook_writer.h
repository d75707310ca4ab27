// HeadHookWriter: a ResponseWriter that forwards everything to the server's writer and lets
// a subclass see (and add to) each response's head first: the HTTP API's metrics count the
// status, and CORS adds its headers, without either touching the code that answers.
#ifndef RINGSERVE_COMMON_OPENAI_HEAD_HOOK_WRITER_H_
#define RINGSERVE_COMMON_OPENAI_HEAD_HOOK_WRITER_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "common/http/http_server.h"

namespace ringserve::openai {

// Thread: as ResponseWriter (any); OnHead runs on the thread that answers.
class HeadHookWriter : public http::ResponseWriter {
 public:
  explicit HeadHookWriter(std::shared_ptr<http::ResponseWriter> inner) : inner_(std::move(inner)) {}

  void Respond(int status, absl::string_view content_type, std::string body,
               http::Headers extra_headers) final {
    OnHead(status, extra_headers);
    inner_->Respond(status, content_type, std::move(body), std::move(extra_headers));
  }
  void StartStream(int status, absl::string_view content_type, http::Headers extra_headers) final {
    OnHead(status, extra_headers);
    inner_->StartStream(status, content_type, std::move(extra_headers));
  }
  void Write(std::string data) final { inner_->Write(std::move(data)); }
  void Finish() final { inner_->Finish(); }
  void OnClientGone(std::function<void()> callback) final {
    inner_->OnClientGone(std::move(callback));
  }
  size_t pending_bytes() const final { return inner_->pending_bytes(); }
  void OnWritable(size_t low_water, std::function<void()> callback) final {
    inner_->OnWritable(low_water, std::move(callback));
  }

 protected:
  // A response's head is about to go out with `status`; `headers` may be added to.
  virtual void OnHead(int status, http::Headers& headers) = 0;

 private:
  const std::shared_ptr<http::ResponseWriter> inner_;
};

// `writer`, adding `headers` to every response's head.
std::shared_ptr<http::ResponseWriter> WithHeaders(http::Headers headers,
                                                  std::shared_ptr<http::ResponseWriter> writer);

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_HEAD_HOOK_WRITER_H_
