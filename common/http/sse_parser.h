// SseParser: turns the body of a "text/event-stream" response into events, however its bytes
// arrive (WHATWG HTML, section 9.2.6 "Interpreting an event stream"). Pure: no sockets, no
// clock; it sits on the decoded body that HttpResponseParser hands out.
#ifndef RINGSERVE_COMMON_HTTP_SSE_PARSER_H_
#define RINGSERVE_COMMON_HTTP_SSE_PARSER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace ringserve::http {

// One Server-Sent Event, as the spec's dispatch step makes it.
struct SseEvent {
  std::string event;  // the "event" field; empty when the stream named none ("message")
  std::string data;   // the "data" lines joined with "\n" (no trailing newline)
  std::string id;     // the last "id" field seen in the stream so far (empty if none)
};

// Owner: one response stream. Not thread-safe. Bytes are passed through as they are: the spec's
// UTF-8 decoding (invalid sequences become U+FFFD) is left to whoever reads the data, so JSON
// payloads reach their parser unchanged. Each byte is scanned once, however the stream is
// split, so a long stream of small events costs time linear in its length.
class SseParser {
 public:
  // Consumes all of `bytes` (split anywhere, even inside a CRLF pair or a UTF-8 character) and
  // appends every event they complete to *events.
  void Feed(absl::string_view bytes, std::vector<SseEvent>* events);

  // Bytes are held for an unfinished line or event: a stream that ends now ends mid-event, and
  // the spec discards that event.
  bool has_partial() const {
    return !bom_prefix_.empty() || !line_.empty() || !data_.empty() || !event_type_.empty();
  }

 private:
  void FeedLines(absl::string_view bytes, std::vector<SseEvent>* events);
  void ProcessLine(absl::string_view line, std::vector<SseEvent>* events);
  void Dispatch(std::vector<SseEvent>* events);

  bool bom_checked_ = false;  // the stream's first bytes have been checked for a UTF-8 BOM
  std::string bom_prefix_;    // the first bytes while they could still be a BOM
  bool skip_lf_ = false;      // the last line ended with CR: a LF next completes that CRLF
  std::string line_;          // an unfinished line, without its end
  std::string data_;          // the data buffer: each "data" value followed by "\n"
  std::string event_type_;    // the event type buffer
  std::string last_id_;       // the last event ID buffer: kept across events
};

}  // namespace ringserve::http

#endif  // RINGSERVE_COMMON_HTTP_SSE_PARSER_H_
