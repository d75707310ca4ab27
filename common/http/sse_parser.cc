#include "common/http/sse_parser.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"

namespace ringserve::http {
namespace {

// The stream may start with one UTF-8 byte order mark, which is not part of its first line.
constexpr absl::string_view kBom = "\xEF\xBB\xBF";

}  // namespace

void SseParser::Feed(absl::string_view bytes, std::vector<SseEvent>* events) {
  if (!bom_checked_) {
    // The BOM may itself arrive split: its first bytes wait here until they are all in or one
    // of them differs.
    const size_t n = std::min(bytes.size(), kBom.size() - bom_prefix_.size());
    bom_prefix_.append(bytes.data(), n);
    bytes.remove_prefix(n);
    if (bom_prefix_.size() < kBom.size() && absl::StartsWith(kBom, bom_prefix_)) return;
    bom_checked_ = true;
    const std::string prefix = std::move(bom_prefix_);
    bom_prefix_.clear();
    if (prefix != kBom) FeedLines(prefix, events);
  }
  FeedLines(bytes, events);
}

void SseParser::FeedLines(absl::string_view bytes, std::vector<SseEvent>* events) {
  size_t pos = 0;
  // A CR that ended the previous Feed and a LF that starts this one are one line end.
  if (skip_lf_ && !bytes.empty()) {
    skip_lf_ = false;
    if (bytes.front() == '\n') pos = 1;
  }
  while (pos < bytes.size()) {
    const size_t end = bytes.find_first_of("\r\n", pos);
    if (end == absl::string_view::npos) {
      line_.append(bytes.data() + pos, bytes.size() - pos);
      return;
    }
    const absl::string_view piece = bytes.substr(pos, end - pos);
    if (line_.empty()) {
      ProcessLine(piece, events);  // the common case: the whole line is in this Feed
    } else {
      line_.append(piece.data(), piece.size());
      ProcessLine(line_, events);
      line_.clear();
    }
    pos = end + 1;
    if (bytes[end] == '\r') {
      if (pos == bytes.size()) {
        skip_lf_ = true;
      } else if (bytes[pos] == '\n') {
        ++pos;
      }
    }
  }
}

void SseParser::ProcessLine(absl::string_view line, std::vector<SseEvent>* events) {
  if (line.empty()) return Dispatch(events);
  if (line.front() == ':') return;  // a comment, e.g. a keep-alive ": ping"
  absl::string_view field = line;
  absl::string_view value;
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);  // only one space
  }
  if (field == "data") {
    data_.append(value.data(), value.size());
    data_.push_back('\n');
  } else if (field == "event") {
    event_type_.assign(value.data(), value.size());
  } else if (field == "id") {
    if (!absl::StrContains(value, '\0')) last_id_.assign(value.data(), value.size());
  }
  // "retry" sets the reconnection time of an EventSource, which a client that does not
  // reconnect has no use for; other fields are ignored by the spec.
}

void SseParser::Dispatch(std::vector<SseEvent>* events) {
  // A blank line without data ends nothing worth reporting, and forgets the event type.
  if (data_.empty()) {
    event_type_.clear();
    return;
  }
  data_.pop_back();  // the "\n" after the last data line
  events->push_back(SseEvent{std::move(event_type_), std::move(data_), last_id_});
  event_type_.clear();
  data_.clear();
}

}  // namespace ringserve::http
