// The matcher: a set of pushdown stacks over the grammar nodes, one per alternative still
// alive, advanced byte by byte. Every stack is kept viable (it can still be completed), so
// "some stack survives the byte" is exactly "the bytes are a prefix of an accepted text".
//
// Speed matters more than elsewhere: the token mask runs Advance once per vocabulary trie
// node at every decoding step. Frames are small trivially copyable values, a stack is a
// vector of them, and both the stacks and Advance's scratch keep their storage, so that in
// steady state neither copying a matcher nor advancing it allocates.
#include "worker/grammar/matcher.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/check.h"
#include "worker/grammar/grammar_nodes.h"
#include "worker/grammar/matcher_frames.h"
#include "worker/grammar/regex.h"

namespace ringserve::grammar {
namespace matcher_internal {
namespace {

// Alternatives kept at once. anyOf branches that parse alike (objects under objects) can
// multiply; past this many the extra ones are dropped, which keeps every text the matcher
// takes completable but may refuse a text only a dropped branch would accept. Every byte of
// a mask's trie walk feeds each alternative, so this also bounds what one request's schema
// can make a step cost: 16 alternatives walk a 32k vocabulary in about 30 ms, where one
// takes 2 ms (ringserve-grammar-mask-bench, BM_MaskManyAlternatives).
constexpr size_t kMaxStacks = 16;

// Raw text whose every frame may end where it is (a rule's caller where the rule returns),
// a JSON rule's number included: it ends where the next byte is not one of its own.
bool IsCompleteText(const std::vector<Node>& nodes, const Frames& frames) {
  auto end = frames.end();
  const Frame& top = frames.back();
  if (top.state != kText) {
    if (!NumberComplete(nodes[static_cast<size_t>(top.node)], top)) return false;
    --end;
  }
  return std::all_of(frames.begin(), end, [&](const Frame& frame) {
    return frame.state == kText &&
           nodes[static_cast<size_t>(frame.node)].pattern->Accepting(frame.count);
  });
}

bool IsCompleteStack(const std::vector<Node>& nodes, const Stack& stack) {
  if (stack.frames.empty()) return true;
  if (stack.frames[0].state == kText) return IsCompleteText(nodes, stack.frames);
  if (stack.frames.size() != 1) return false;
  const Frame& frame = stack.frames[0];  // a top-level number may end here
  return NumberComplete(nodes[static_cast<size_t>(frame.node)], frame);
}

// Feeds one byte to stacks, writing the survivors (and the alternatives they fork) into a
// scratch vector whose stacks keep their storage from byte to byte.
class Stepper {
 public:
  Stepper(const std::vector<Node>& nodes, std::vector<Stack>& out) : nodes_(nodes), out_(out) {}

  void Feed(const Stack& from, uint8_t byte) {
    const size_t slot = AddSlot();
    if (slot == kNoSlot) return;
    out_[slot].frames.assign(from.frames.begin(), from.frames.end());
    if (!Run(slot, byte)) out_[slot].dead = true;
  }

  // Drops the dead and the duplicate stacks; returns how many are left, at the front.
  size_t Compact() {
    size_t kept = 0;
    for (size_t i = 0; i < used_; ++i) {
      if (out_[i].dead) continue;
      const bool duplicate = std::any_of(out_.begin(), out_.begin() + kept, [&](const Stack& s) {
        return s.frames == out_[i].frames;
      });
      if (duplicate) continue;
      if (i != kept) std::swap(out_[i], out_[kept]);
      ++kept;
    }
    return kept;
  }

 private:
  static constexpr size_t kNoSlot = ~size_t{0};

  size_t AddSlot() {
    if (used_ == kMaxStacks) return kNoSlot;
    if (used_ == out_.size()) out_.emplace_back();
    out_[used_].dead = false;
    return used_++;
  }

  // A fork that did not survive the byte; its slot is reused when it is the last one, so
  // that the forks a grammar tries and drops do not use up kMaxStacks.
  void Drop(size_t slot) {
    out_[slot].dead = true;
    if (slot + 1 == used_) --used_;
  }

  size_t Fork(size_t slot) {
    const size_t fork = AddSlot();
    if (fork != kNoSlot) out_[fork].frames = out_[slot].frames;
    return fork;
  }

  bool Run(size_t slot, uint8_t byte);
  Outcome Pending(size_t slot, uint8_t byte);
  Outcome RuleByte(size_t slot, uint8_t byte, bool may_return);
  bool CallRule(size_t slot, const RegexDfa::Call& call, uint8_t byte);
  Outcome Literal(size_t slot, uint8_t byte);

  const std::vector<Node>& nodes_;
  std::vector<Stack>& out_;
  size_t used_ = 0;
};

bool Stepper::Run(size_t slot, uint8_t byte) {
  for (;;) {
    Frames& frames = out_[slot].frames;
    if (frames.empty()) return false;  // the value has ended: nothing may follow it
    Outcome outcome;
    const uint8_t state = frames.back().state;
    if (state == kPending) {
      outcome = Pending(slot, byte);
    } else if (state == kLiteral) {
      outcome = Literal(slot, byte);
    } else if (state == kText) {
      outcome = RuleByte(slot, byte, /*may_return=*/true);
    } else {
      outcome = FrameByte(nodes_, frames, byte);
    }
    if (outcome != Outcome::kAgain) return outcome == Outcome::kTake;
  }
}

// A value starts: one frame per concrete alternative that may start with this byte, the
// first in this stack, the others in forks.
Outcome Stepper::Pending(size_t slot, uint8_t byte) {
  if (IsSpace(byte)) return TakeSpace(out_[slot].frames.back(), byte);
  const Node& node = nodes_[out_[slot].frames.back().node];
  if (!node.first_bytes[byte]) return Outcome::kReject;
  int32_t own = -1;
  for (const int32_t alternative : node.alternatives) {
    if (!nodes_[alternative].first_bytes[byte]) continue;
    if (own < 0) {
      own = alternative;
      continue;
    }
    const size_t fork = Fork(slot);
    if (fork == kNoSlot) break;
    out_[fork].frames.back() = Fresh(nodes_, alternative);
    if (!Run(fork, byte)) out_[fork].dead = true;
  }
  out_[slot].frames.back() = Fresh(nodes_, own);
  return Outcome::kAgain;
}

// The frames above frame `depth` (from 1) that finishing `node` from `state` takes.
int32_t FinishDepth(const Node& node, int32_t state) {
  return node.finish_depth.empty() ? 0 : node.finish_depth[static_cast<size_t>(state)];
}

// Raw text: a regex's automaton, or a grammar rule's. The rule's automaton takes the byte
// itself; or it calls a rule whose text starts with the byte (a fork per rule); or, where
// its text may end, it returns to its caller, which takes the byte (another fork). A step
// is refused where finishing the text would need more than kMaxRuleDepth frames, so every
// stack kept can be completed. A call stands for a non-empty text (the compiler turned the
// empty one into an epsilon edge), so a frame pushed for this byte cannot return before
// taking it (may_return false), and the calls and returns one byte sets off are finite.
Outcome Stepper::RuleByte(size_t slot, uint8_t byte, bool may_return) {
  const Frame top = out_[slot].frames.back();
  const Node& node = nodes_[static_cast<size_t>(top.node)];
  const RegexDfa& dfa = *node.pattern;
  for (const RegexDfa::Call& call : dfa.Calls(top.count)) {
    if (!CallRule(slot, call, byte)) break;
  }
  if (may_return && out_[slot].frames.size() > 1 && dfa.Accepting(top.count)) {
    const size_t fork = Fork(slot);
    if (fork != kNoSlot) {
      out_[fork].frames.pop_back();
      if (RuleByte(fork, byte, true) != Outcome::kTake) Drop(fork);
    }
  }
  const int32_t next = dfa.Next(top.count, byte);
  const auto depth = static_cast<int32_t>(out_[slot].frames.size());
  if (next == RegexDfa::kDead || depth + FinishDepth(node, next) > kMaxRuleDepth) {
    return Outcome::kReject;
  }
  out_[slot].frames.back().count = next;
  return Outcome::kTake;
}

// Forks `slot` into a stack that calls `call.rule` for `byte`; false when no slot is left.
bool Stepper::CallRule(size_t slot, const RegexDfa::Call& call, uint8_t byte) {
  const Node& callee = nodes_[static_cast<size_t>(call.rule)];
  if (!callee.first_bytes[byte]) return true;
  const Frame& caller = out_[slot].frames.back();
  const Node& node = nodes_[static_cast<size_t>(caller.node)];
  // A call that ends its caller's text replaces the caller's frame, so that a rule that
  // recurses at its end (list ::= item list?) does not grow the stack.
  const bool tail = node.pattern->IsFinal(call.next);
  auto depth = static_cast<int32_t>(out_[slot].frames.size());
  if (!tail) {
    if (depth + FinishDepth(node, call.next) > kMaxRuleDepth) return true;
    ++depth;
  }
  if (depth + callee.nonempty_finish_depth > kMaxRuleDepth) return true;
  const size_t fork = Fork(slot);
  if (fork == kNoSlot) return false;
  Frames& frames = out_[fork].frames;
  if (tail) {
    frames.pop_back();
  } else {
    frames.back().count = call.next;
  }
  if (callee.kind != NodeKind::kText) {
    // A JSON value (FromGbnf's json_rules): its frames run above the caller's, and the
    // caller goes on once the value's last frame ends.
    frames.push_back(Frame{.node = call.rule});
    if (!Run(fork, byte)) Drop(fork);
    return true;
  }
  frames.push_back(Frame{.node = call.rule, .state = kText, .count = RegexDfa::kStart});
  if (RuleByte(fork, byte, false) != Outcome::kTake) Drop(fork);
  return true;
}

// Literal texts are sorted, so those that match the bytes so far are a contiguous range.
Outcome Stepper::Literal(size_t slot, uint8_t byte) {
  Frame& frame = out_[slot].frames.back();
  const std::vector<std::string>& texts = nodes_[frame.node].literals;
  const auto at = static_cast<size_t>(frame.count);
  const auto lo = static_cast<uint32_t>(frame.bits);
  const auto hi = static_cast<uint32_t>(frame.bits >> 32);
  uint32_t first = hi;
  uint32_t last = hi;
  for (uint32_t i = lo; i < hi; ++i) {
    if (at < texts[i].size() && static_cast<uint8_t>(texts[i][at]) == byte) {
      if (first == hi) first = i;
      last = i + 1;
    }
  }
  if (first == hi) return Outcome::kReject;
  frame.count = static_cast<int32_t>(at + 1);
  const bool ends = texts[first].size() == at + 1;  // the shortest sorts first
  frame.bits = (uint64_t{last} << 32) | (ends ? first + 1 : first);
  if (!ends) return Outcome::kTake;
  // One literal ends here; longer ones (enum [1, 10]) go on as another alternative.
  if (last - first > 1) Fork(slot);
  out_[slot].frames.pop_back();
  return Outcome::kTake;
}

}  // namespace
}  // namespace matcher_internal

using matcher_internal::Frames;
using matcher_internal::Fresh;
using matcher_internal::IsCompleteStack;
using matcher_internal::IsNumberEnd;
using matcher_internal::kStrBody;
using matcher_internal::kStrPairU;
using matcher_internal::kText;
using matcher_internal::Node;
using matcher_internal::NumberCanGrow;
using matcher_internal::Stepper;

Matcher::Matcher(std::shared_ptr<const Grammar> grammar) : grammar_(std::move(grammar)) {
  RS_CHECK(grammar_ != nullptr && !grammar_->nodes().empty());
  // A JSON value may follow whitespace; raw text starts at its first byte.
  const bool text = grammar_->nodes()[0].kind == NodeKind::kText;
  stacks_.push_back(Stack{.frames = {text ? Fresh(grammar_->nodes(), 0) : Frame{.node = 0}}});
  live_ = 1;
}

Matcher::Matcher(const Matcher& other)
    : grammar_(other.grammar_),
      stacks_(other.stacks_.begin(), other.stacks_.begin() + static_cast<ptrdiff_t>(other.live_)),
      live_(other.live_) {}

Matcher& Matcher::operator=(const Matcher& other) {
  if (this == &other) return *this;
  if (grammar_ != other.grammar_) grammar_ = other.grammar_;
  if (stacks_.size() < other.live_) stacks_.resize(other.live_);
  for (size_t i = 0; i < other.live_; ++i) {
    stacks_[i].frames.assign(other.stacks_[i].frames.begin(), other.stacks_[i].frames.end());
  }
  live_ = other.live_;
  return *this;
}

Matcher::Matcher(Matcher&& other) noexcept
    : grammar_(std::move(other.grammar_)),
      stacks_(std::move(other.stacks_)),
      live_(std::exchange(other.live_, 0)),
      next_(std::move(other.next_)) {}

Matcher& Matcher::operator=(Matcher&& other) noexcept {
  if (this == &other) return *this;
  grammar_ = std::move(other.grammar_);
  stacks_.swap(other.stacks_);
  live_ = std::exchange(other.live_, 0);
  next_.swap(other.next_);
  return *this;
}

Matcher::~Matcher() = default;

bool Matcher::Advance(uint8_t byte) {
  Stepper stepper(grammar_->nodes(), next_);
  for (size_t i = 0; i < live_; ++i) stepper.Feed(stacks_[i], byte);
  const size_t kept = stepper.Compact();
  if (kept == 0) return false;
  stacks_.swap(next_);
  live_ = kept;
  return true;
}

bool Matcher::Advance(std::string_view bytes) {
  Matcher trial(*this);
  for (const char c : bytes) {
    if (!trial.Advance(static_cast<uint8_t>(c))) return false;
  }
  *this = std::move(trial);
  return true;
}

bool Matcher::IsComplete() const {
  const auto& nodes = grammar_->nodes();
  return std::any_of(stacks_.begin(), stacks_.begin() + static_cast<ptrdiff_t>(live_),
                     [&](const Stack& stack) { return IsCompleteStack(nodes, stack); });
}

bool Matcher::IsFinished() const {
  // Every live stack can be completed, so one that is not empty may take another byte;
  // the exceptions are a complete top-level number that nothing may extend: "0" or "-0"
  // as an integer, one at the edge of its range ("5" under "maximum": 9) or its digits,
  // and raw text that its pattern or grammar lets go no further.
  const auto& nodes = grammar_->nodes();
  const auto done = [&](const Stack& stack) {
    if (stack.frames.empty()) return true;
    if (stack.frames[0].state == kText) {
      return std::all_of(stack.frames.begin(), stack.frames.end(), [&](const Frame& frame) {
        return frame.state == kText &&
               nodes[static_cast<size_t>(frame.node)].pattern->IsFinal(frame.count);
      });
    }
    if (stack.frames.size() != 1) return false;
    const Frame& frame = stack.frames[0];
    const Node& node = nodes[static_cast<size_t>(frame.node)];
    return IsNumberEnd(frame.state) && IsCompleteStack(nodes, stack) && !NumberCanGrow(node, frame);
  };
  return live_ > 0 &&
         std::all_of(stacks_.begin(), stacks_.begin() + static_cast<ptrdiff_t>(live_), done);
}

Matcher Matcher::MaskKey(int32_t lookahead) const {
  // Negative counts: no real count equals a class.
  constexpr int32_t kMinMet = -1;  // min reached; max beyond the lookahead
  constexpr int32_t kMinFar = -2;  // min beyond the lookahead; so is max
  Matcher key = *this;
  for (size_t i = 0; i < key.live_; ++i) {
    Frames& frames = key.stacks_[i].frames;
    if (frames.empty()) continue;
    Frame& top = frames.back();
    if (top.state < kStrBody || top.state > kStrPairU) continue;  // not inside a string value
    const Node& node = grammar_->nodes()[static_cast<size_t>(top.node)];
    // Its count is a position or an automaton's state.
    if (node.format != StringFormat::kNone || node.pattern != nullptr) continue;
    const int64_t reach = int64_t{top.count} + lookahead;
    if (reach > node.max) continue;
    if (top.count >= node.min) {
      top.count = kMinMet;
    } else if (reach < node.min) {
      top.count = kMinFar;
    }
  }
  return key;
}

std::optional<int32_t> Matcher::PlainStringRoom() const {
  if (live_ == 0) return std::nullopt;
  // A token is taken when one alternative takes it: the room is the largest.
  int32_t room = 0;
  for (size_t i = 0; i < live_; ++i) {
    const Frames& frames = stacks_[i].frames;
    if (frames.empty()) return std::nullopt;
    const Frame& top = frames.back();
    if (top.state != kStrBody) return std::nullopt;  // not a string value, or mid-character
    const Node& node = grammar_->nodes()[static_cast<size_t>(top.node)];
    if (node.format != StringFormat::kNone || node.pattern != nullptr) return std::nullopt;
    // A code point is refused once the count reaches max (StringFrameByte).
    room = std::max(room, node.max == kUnbounded ? kUnbounded : node.max - top.count);
  }
  return room;
}

std::optional<Matcher::AutomatonState> Matcher::Automaton() const {
  if (live_ != 1 || stacks_[0].frames.empty()) return std::nullopt;
  const Frames& frames = stacks_[0].frames;
  const Frame& top = frames.back();
  const Node& node = grammar_->nodes()[static_cast<size_t>(top.node)];
  if (top.state == kText) {
    return AutomatonState{.dfa = node.pattern.get(),
                          .state = top.count,
                          .may_return = frames.size() > 1,
                          .finish_depth = node.finish_depth.empty() ? nullptr : &node.finish_depth,
                          .depth_room = kMaxRuleDepth - static_cast<int32_t>(frames.size())};
  }
  if (top.state == kStrBody && node.pattern != nullptr) {
    return AutomatonState{.dfa = node.pattern.get(), .state = top.count, .in_string = true};
  }
  return std::nullopt;
}

bool operator==(const Matcher& a, const Matcher& b) {
  if (a.grammar_ != b.grammar_ || a.live_ != b.live_) return false;
  const auto b_end = b.stacks_.begin() + static_cast<ptrdiff_t>(b.live_);
  // Both sets are deduplicated: equal sizes and a ⊆ b make them equal.
  return std::all_of(a.stacks_.begin(), a.stacks_.begin() + static_cast<ptrdiff_t>(a.live_),
                     [&](const Matcher::Stack& s) {
                       return std::any_of(b.stacks_.begin(), b_end, [&](const Matcher::Stack& t) {
                         return t.frames == s.frames;
                       });
                     });
}

}  // namespace ringserve::grammar
