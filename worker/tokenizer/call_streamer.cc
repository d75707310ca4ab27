#include "worker/tokenizer/call_streamer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/tokenizer/tool_calls.h"

namespace ringserve::tokenizer {
namespace {

bool IsJsonSpace(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

}  // namespace

CallStreamer::CallStreamer(ChatFormat format, std::vector<std::string> tool_names)
    : format_(format), tool_names_(std::move(tool_names)) {}

void CallStreamer::Restart() {
  stretch_.clear();
  phase_ = Phase::kBetween;
  pos_ = 0;
}

bool CallStreamer::Expect(std::string_view held, std::string_view want) {
  const size_t available = std::min(held.size() - pos_, want.size());
  if (held.substr(pos_, available) != want.substr(0, available)) {
    phase_ = Phase::kLost;
    return false;
  }
  if (available < want.size()) return false;  // the rest has yet to arrive
  pos_ += want.size();
  return true;
}

bool CallStreamer::TakeArguments(std::string_view held, std::string& piece) {
  while (pos_ < held.size()) {
    const char c = held[pos_];
    if (!started_) {
      if (IsJsonSpace(c)) {
        ++pos_;
        continue;
      }
      started_ = true;
      scalar_ = c != '{' && c != '[' && c != '"';
    } else if (scalar_ && (c == ',' || c == '}' || IsJsonSpace(c))) {
      return true;  // a number or literal ends before what follows it
    }
    piece += c;
    ++pos_;
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
        if (depth_ == 0) return true;  // the value was a string
      }
    } else if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if ((c == '}' || c == ']') && --depth_ <= 0) {
      return true;
    }
  }
  return false;
}

void CallStreamer::Scan(std::string_view held, std::vector<ToolCallDelta>& out) {
  const auto add_piece = [&](std::string piece) {
    const int index = next_index_ - 1;
    if (!out.empty() && out.back().index == index) {
      out.back().arguments += piece;
    } else {
      out.push_back({.index = index, .arguments = std::move(piece)});
    }
  };
  while (pos_ < held.size()) {
    switch (phase_) {
      case Phase::kLost:
        return;
      case Phase::kBetween: {  // before a call's object: Mistral's "[" and ", ", whitespace
        const char c = held[pos_];
        if (c == '{') {
          phase_ = Phase::kNameKey;
        } else if (!IsJsonSpace(c) && c != '[' && c != ',') {
          phase_ = Phase::kLost;  // Mistral's closing "]", or text the grammar would not allow
        }
        ++pos_;
        break;
      }
      case Phase::kNameKey:
        if (!Expect(held, "\"name\": \"")) return;
        name_begin_ = pos_;
        phase_ = Phase::kName;
        break;
      case Phase::kName: {
        const size_t quote = held.find('"', pos_);
        if (quote == std::string_view::npos) {
          pos_ = held.size();
          return;
        }
        std::string name(held.substr(name_begin_, quote - name_begin_));
        if (std::find(tool_names_.begin(), tool_names_.end(), name) == tool_names_.end()) {
          phase_ = Phase::kLost;
          return;
        }
        stretch_.push_back({.id = NewCallId(format_), .name = name, .arguments = ""});
        out.push_back({.index = next_index_++, .id = stretch_.back().id, .name = std::move(name)});
        pos_ = quote + 1;
        phase_ = Phase::kArgumentsKey;
        break;
      }
      case Phase::kArgumentsKey:
        if (!Expect(held, absl::StrCat(", \"", std::string(ToolArgumentsKey(format_)), "\": "))) {
          return;
        }
        phase_ = Phase::kArguments;
        depth_ = 0;
        started_ = scalar_ = in_string_ = escaped_ = false;
        break;
      case Phase::kArguments: {
        std::string piece;
        const bool ended = TakeArguments(held, piece);
        if (!piece.empty()) {
          stretch_.back().arguments += piece;
          add_piece(std::move(piece));
        }
        if (!ended) return;
        stretch_.back().complete = true;
        phase_ = Phase::kClose;
        break;
      }
      case Phase::kClose: {  // the call object's "}"
        const char c = held[pos_++];
        if (c == '}') {
          phase_ = Phase::kBetween;
        } else if (!IsJsonSpace(c)) {
          phase_ = Phase::kLost;
        }
        break;
      }
    }
  }
}

}  // namespace ringserve::tokenizer
