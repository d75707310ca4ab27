// Tool calls as they are generated (Chat.stream_tool_calls): a reply's calls, held to their
// grammar ({"name": "N", "arguments": ARGS} each, tool_calls.h's ToolCallsGbnf), followed
// through the text the reply parser holds, so each call's name and the pieces of its
// arguments go out before the call is whole.
#ifndef RINGSERVE_WORKER_TOKENIZER_CALL_STREAMER_H_
#define RINGSERVE_WORKER_TOKENIZER_CALL_STREAMER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "worker/tokenizer/chat_format.h"

namespace ringserve::tokenizer {

// A piece of a streamed call: the first names it (index, id, name), the others carry the
// next piece of its arguments' text; the first may carry one too.
struct ToolCallDelta {
  int index = 0;
  std::string id{};
  std::string name{};
  std::string arguments{};
};

class CallStreamer {
 public:
  // A call of what was streamed: its id, name and arguments' text, and whether the
  // arguments' value ended.
  struct Streamed {
    std::string id;
    std::string name;
    std::string arguments;
    bool complete = false;
  };

  CallStreamer(ChatFormat format, std::vector<std::string> tool_names);

  // `held`: the text of the current stretch of calls so far (the parser's held text, which
  // only grows until Restart). Appends to `out` what the new text adds. Text that leaves the
  // calls' shape stops the stretch's streaming.
  void Scan(std::string_view held, std::vector<ToolCallDelta>& out);
  // The held text now starts a new stretch (ChatML: after each <tool_call>).
  void Restart();
  // The calls the current stretch streamed, in order.
  std::span<const Streamed> stretch() const { return stretch_; }

 private:
  enum class Phase : uint8_t {
    kBetween,
    kNameKey,
    kName,
    kArgumentsKey,
    kArguments,
    kClose,
    kLost
  };

  // Steps over `want` at pos_ once it has all arrived: false while it may still arrive (or,
  // with phase_ kLost, when the text differs).
  bool Expect(std::string_view held, std::string_view want);
  // Takes the argument value's bytes from pos_; true once the value ended.
  bool TakeArguments(std::string_view held, std::string& piece);

  ChatFormat format_;
  std::vector<std::string> tool_names_;
  std::vector<Streamed> stretch_;
  Phase phase_ = Phase::kBetween;
  size_t pos_ = 0;  // in the held text
  int next_index_ = 0;
  size_t name_begin_ = 0;
  // The argument value's JSON: nesting depth, and inside a string (after a backslash).
  int depth_ = 0;
  bool started_ = false;
  bool scalar_ = false;  // a number or literal, which ends where the next token starts
  bool in_string_ = false;
  bool escaped_ = false;
};

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_CALL_STREAMER_H_
