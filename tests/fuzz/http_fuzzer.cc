// libFuzzer target for rs_http's parsers: the router's HTTP port takes requests from anyone,
// and ringserve-bench reads responses from any server, so no bytes may crash them, and how the
// bytes are split into reads must never change what they parse to. The first input byte picks
// the parser (0: requests, 1: responses, 2: Server-Sent Events), the second seeds the read
// sizes; the rest is the stream. Each stream is parsed whole and again in reads of 1-16
// bytes, and both must agree on everything parsed and on how it ended.
// Every property failure aborts, so the fuzzer reports it as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/http/http_request_parser.h"
#include "common/http/http_response_parser.h"
#include "common/http/sse_parser.h"

namespace ringserve::http {
namespace {

void Require(bool condition, const char* property) {
  if (condition) return;
  std::fprintf(stderr, "http_fuzzer: property failed: %s\n", property);
  std::abort();
}

// Read sizes of 1-16 bytes from a seed: a tiny deterministic generator.
class Reads {
 public:
  explicit Reads(uint8_t seed) : state_(seed * 2654435761u + 1) {}
  size_t Next() {
    state_ = state_ * 1103515245u + 12345u;
    return 1 + (state_ >> 16) % 16;
  }

 private:
  uint32_t state_;
};

// Everything a stream parsed to, as text, and how it ended.
std::string ParseRequests(absl::string_view stream, const std::vector<size_t>& reads) {
  HttpParserLimits limits;
  limits.max_head_bytes = 1024;  // small limits, so the fuzzer reaches them
  limits.max_body_bytes = 4096;
  HttpRequestParser parser(limits);
  std::string out;
  std::string pending;  // bytes read but not yet consumed
  size_t at = 0;
  size_t read = 0;
  while (true) {
    const size_t size = reads.empty() ? stream.size() : reads[read++ % reads.size()];
    const absl::string_view chunk = stream.substr(at, size);
    at += chunk.size();
    pending.append(chunk.data(), chunk.size());
    while (true) {
      const size_t used = parser.Feed(pending);
      Require(used <= pending.size(), "a request parser consumes no more than it is given");
      pending.erase(0, used);
      if (parser.state() == HttpRequestParser::State::kComplete) {
        const HttpRequest r = parser.TakeRequest();
        absl::StrAppend(&out, r.method, " ", r.target, " ", r.path, " ", r.minor_version, " ",
                        r.headers.size(), " ", r.body.size(), ":", r.body, "|");
        continue;
      }
      if (parser.state() == HttpRequestParser::State::kError) {
        Require(parser.error_status() >= 400 && parser.error_status() < 600,
                "a refused request has an error status");
        return absl::StrCat(out, "error ", parser.error_status());
      }
      break;
    }
    if (at >= stream.size()) break;
  }
  return absl::StrCat(out, "incomplete ", parser.started());
}

std::string ParseResponses(absl::string_view stream, const std::vector<size_t>& reads) {
  HttpResponseParser parser(/*max_head_bytes=*/1024);
  std::string out;
  std::string pending;
  size_t at = 0;
  size_t read = 0;
  while (true) {
    const size_t size = reads.empty() ? stream.size() : reads[read++ % reads.size()];
    const absl::string_view chunk = stream.substr(at, size);
    at += chunk.size();
    pending.append(chunk.data(), chunk.size());
    while (true) {
      std::string body;
      const size_t used = parser.Feed(pending, &body);
      Require(used <= pending.size(), "a response parser consumes no more than it is given");
      pending.erase(0, used);
      out += body;
      if (parser.state() == HttpResponseParser::State::kComplete) {
        absl::StrAppend(&out, "|", parser.head().status, " ", parser.head().headers.size(), " ",
                        parser.keep_alive(), "|");
        if (!parser.keep_alive()) return absl::StrCat(out, "closed");
        parser.Reset();
        continue;
      }
      if (parser.state() == HttpResponseParser::State::kError) {
        Require(!parser.error_message().empty(), "a malformed response says what was wrong");
        return absl::StrCat(out, "error");
      }
      break;
    }
    if (at >= stream.size()) break;
  }
  parser.FeedEof();
  Require(parser.state() != HttpResponseParser::State::kIncomplete,
          "the end of the stream ends the response one way or another");
  return absl::StrCat(out, "eof ", static_cast<int>(parser.state()));
}

std::string ParseEvents(absl::string_view stream, const std::vector<size_t>& reads) {
  SseParser parser;
  std::vector<SseEvent> events;
  size_t at = 0;
  size_t read = 0;
  while (at < stream.size()) {
    const size_t size = reads.empty() ? stream.size() : reads[read++ % reads.size()];
    parser.Feed(stream.substr(at, size), &events);
    at += std::min(size, stream.size() - at);
  }
  std::string out;
  for (const SseEvent& e : events) absl::StrAppend(&out, e.event, "\n", e.id, "\n", e.data, "\n\n");
  return absl::StrCat(out, parser.has_partial());
}

}  // namespace
}  // namespace ringserve::http

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringserve::http;  // NOLINT(build/namespaces): one function
  if (size < 2) return 0;
  const absl::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
  ringserve::http::Reads generator(data[1]);
  std::vector<size_t> reads(64);
  for (size_t& r : reads) r = generator.Next();
  std::string whole;
  std::string split;
  switch (data[0] % 3) {
    case 0:
      whole = ParseRequests(stream, {});
      split = ParseRequests(stream, reads);
      break;
    case 1:
      whole = ParseResponses(stream, {});
      split = ParseResponses(stream, reads);
      break;
    default:
      whole = ParseEvents(stream, {});
      split = ParseEvents(stream, reads);
      break;
  }
  Require(whole == split, "how the bytes are split does not change what they parse to");
  return 0;
}
