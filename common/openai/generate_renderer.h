// What an HTTP API makes of a call's Generate streams: OpenAI's completion and chat objects
// (ResponseRenderer) or its Responses API (ResponsesRenderer). The streams' plumbing
// (generate_call) is the same for each; only the JSON differs.
#ifndef RINGSERVE_COMMON_OPENAI_GENERATE_RENDERER_H_
#define RINGSERVE_COMMON_OPENAI_GENERATE_RENDERER_H_

#include <string>

#include "absl/status/status.h"
#include "common/openai/openai_error.h"
#include "ringserve/v1/inference.pb.h"

namespace ringserve::openai {

// Thread: one at a time (the caller serializes the streams' messages).
class GenerateRenderer {
 public:
  virtual ~GenerateRenderer() = default;

  // Streaming: the events one message of request `request`'s stream adds ("" when none). The
  // first call's events open the stream.
  virtual std::string StreamEvents(int request, const ringserve::v1::GenerateResponse& message) = 0;
  // Streaming: the events that end the stream once every Generate stream has ended; `error` is
  // the first one's failure (OK when all succeeded).
  virtual std::string StreamEnd(const absl::Status& error) = 0;

  // Whole response: takes one message of request `request`'s stream.
  virtual void Accumulate(int request, const ringserve::v1::GenerateResponse& message) = 0;
  // Whole response: the body's JSON text, once every stream has ended successfully.
  virtual std::string Body() const = 0;

  // A failure before the stream began, as the API's error body (OpenAI's by default).
  virtual std::string ErrorJson(const absl::Status& error) const { return ErrorBody(error); }
};

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_GENERATE_RENDERER_H_
