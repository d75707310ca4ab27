// A reply as the ordered items the model wrote, as the Responses API's output items and the
// Messages API's content blocks both present it: its thought (GenerateResponse.reasoning), its
// text, and each tool call. An item opens with its first text and closes when another begins
// or the reply ends; a reply with no output at all is one empty text. The renderers of both
// APIs read the items and turn the listener's calls into their own events.
#ifndef RINGSERVE_COMMON_OPENAI_REPLY_ITEMS_H_
#define RINGSERVE_COMMON_OPENAI_REPLY_ITEMS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/openai/openai_response.h"
#include "ringserve/v1/inference.pb.h"

namespace ringserve::openai {

// Thread: one at a time.
class ReplyItems {
 public:
  enum class Kind { kThought, kText, kCall };
  struct Item {
    Kind kind = Kind::kText;
    // The thought, the text, or the call's arguments so far (whole UTF-8 characters).
    std::string text;
    // A text's output tokens, as chat completions write logprobs (ChatLogprob).
    OrderedJson logprobs = OrderedJson::array();
    std::string call_id;
    std::string name;
    int call_index = -1;  // a call's index among the reply's calls
    bool done = false;
  };

  // Told of each change as it happens (streaming); `index` is the item's place in items().
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void Opened(int index) = 0;
    // `delta` was added to the item's text; `logprobs` (a text's, when asked) are its tokens'.
    virtual void Added(int index, const std::string& delta, const OrderedJson& logprobs) = 0;
    virtual void Closed(int index) = 0;
  };

  // `logprobs`: alternatives per output token in a text's logprobs; nullopt: none kept.
  explicit ReplyItems(std::optional<int> logprobs) : logprobs_(logprobs) {}

  // Takes one message of the stream; `listener` (may be null) hears what it changed.
  void Take(const ringserve::v1::GenerateResponse& message, Listener* listener);
  // Closes every open item (the reply ended); an empty reply gets its empty text first.
  void CloseAll(Listener* listener);

  const std::vector<Item>& items() const { return items_; }
  bool finished() const { return finished_; }
  ringserve::v1::FinishReason finish_reason() const { return finish_reason_; }
  // The final message's stop string, when one stopped the reply.
  const std::string& stop_match() const { return stop_match_; }
  // Ran out of tokens (max_tokens or the context).
  bool Incomplete() const;
  int64_t input_tokens() const { return input_tokens_; }
  int64_t cached_tokens() const { return cached_tokens_; }
  int64_t output_tokens() const { return output_tokens_; }
  // Tokens of messages that carried thought only.
  int64_t reasoning_tokens() const { return reasoning_tokens_; }

 private:
  // Adds an item after closing the open one.
  Item& Begin(Item item, Listener* listener);
  // The open item when it is of `kind`, else a new one.
  Item& Current(Kind kind, Listener* listener);
  Item* CallItem(int call_index);
  void Close(Item& item, Listener* listener);
  int IndexOf(const Item& item) const { return static_cast<int>(&item - items_.data()); }

  const std::optional<int> logprobs_;
  std::vector<Item> items_;
  // Per call item: streamed arguments' partial last character.
  std::vector<std::string> held_;
  // Output tokens' logprobs not yet in a text (tokens whose text is still incomplete).
  OrderedJson pending_logprobs_ = OrderedJson::array();
  int whole_calls_ = 0;  // whole calls seen
  bool finished_ = false;
  ringserve::v1::FinishReason finish_reason_ = ringserve::v1::FINISH_REASON_UNSPECIFIED;
  std::string stop_match_;
  int64_t input_tokens_ = 0;
  int64_t cached_tokens_ = 0;
  int64_t output_tokens_ = 0;
  int64_t reasoning_tokens_ = 0;
};

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_REPLY_ITEMS_H_
