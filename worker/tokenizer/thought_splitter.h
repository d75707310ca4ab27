// A thinking model's reply (chat_format.h, Thinking) split into its thought and its answer as
// it streams: the text between "<think>" (which the model writes, or which the generation
// prompt already opened) and "</think>" is the thought; what follows, past the newlines that
// open it, is the answer. A reply that does not open with a thought is all answer; one cut
// short inside its thought is all thought.
#ifndef RINGSERVE_WORKER_TOKENIZER_THOUGHT_SPLITTER_H_
#define RINGSERVE_WORKER_TOKENIZER_THOUGHT_SPLITTER_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace ringserve::tokenizer {

class ThoughtSplitter {
 public:
  struct Output {
    std::string thought;
    std::string answer;
  };

  // `opened`: the generation prompt ended with "<think>\n", so the reply starts inside the
  // thought. `open` and `close`: the thought's tags (Magistral's [THINK] and [/THINK], control
  // tokens the reply's text spells); string literals, which the splitter keeps views of.
  explicit ThoughtSplitter(bool opened, std::string_view open = "<think>",
                           std::string_view close = "</think>")
      : state_(opened ? State::kThought : State::kStart), open_(open), close_(close) {}

  // Text is held only while it may still be a tag ("<think>" at the start, "</think>" in the
  // thought) or the whitespace around the thought, which is dropped.
  Output Feed(std::string_view text);
  Output Finish();
  // The reply so far when the client wrote it (a continued reply): it sets where the reply
  // stands, and none of it is returned by later calls. Before the first Feed.
  void Resume(std::string_view reply_start);

 private:
  enum class State : uint8_t { kStart, kThought, kAfterThought, kAnswer };

  void Step(Output& out);
  // Moves the first `count` bytes of pending_ to `to` (those of the client's reply start
  // excepted), or drops them.
  void Emit(std::string& to, size_t count);
  void Drop(size_t count);

  State state_;
  std::string_view open_;
  std::string_view close_;
  std::string pending_;
  bool thought_started_ = false;  // some thought text was returned
  size_t resumed_ = 0;            // the leading bytes of pending_ that Resume gave
};

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_THOUGHT_SPLITTER_H_
