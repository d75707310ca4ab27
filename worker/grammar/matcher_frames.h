// The matcher's frames and the byte machines of JSON values (objects, arrays, strings, keys,
// numbers): one frame matches one value, and a byte either advances the top frame, ends it
// (the enclosing frame takes the byte again), or kills the stack. Private to worker/grammar:
// matcher.cc runs these frames in its stacks, json_value_frames.cc implements them.
#ifndef RINGSERVE_WORKER_GRAMMAR_MATCHER_FRAMES_H_
#define RINGSERVE_WORKER_GRAMMAR_MATCHER_FRAMES_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "worker/grammar/grammar_nodes.h"
#include "worker/grammar/matcher.h"

namespace ringserve::grammar {
namespace matcher_internal {

// Containers nest at most this deep: a stack holds at most kMaxNesting + 1 frames, and the
// bracket that would open one more level is refused (deeper output is never needed from a
// model, and the bound keeps copies of the matcher cheap).
constexpr size_t kMaxNesting = 64;

enum State : uint8_t {
  kPending,  // a value of `node` comes next (only whitespace so far)
  // Objects: before '{'; after '{'; before ':'; after a value; after ','.
  kObjOpen,
  kObjFirst,
  kObjColon,
  kObjAfterValue,
  kObjNext,
  // Arrays: before '['; after '['; after an element.
  kArrOpen,
  kArrFirst,
  kArrAfterValue,
  // Strings, then object keys; both run the string machine below (kStringBody... order).
  kStrOpen,
  kStrBody,
  kStrEscape,
  kStrHex,
  kStrUtf8,
  kStrPairSlash,
  kStrPairU,
  kKeyBody,
  kKeyEscape,
  kKeyHex,
  kKeyUtf8,
  kKeyPairSlash,
  kKeyPairU,
  // Numbers, named after the last byte taken.
  kNumStart,
  kNumMinus,
  kNumZero,
  kNumInt,
  kNumDot,
  kNumFrac,
  kNumE,
  kNumESign,
  kNumExp,
  kLiteral,
  kText,  // count: the state of a regex's or a grammar rule's automaton
};

enum class Outcome : uint8_t {
  kTake,    // the byte is taken
  kReject,  // this stack dies
  kAgain,   // the top frame changed (value ended or started): feed the byte again
};

}  // namespace matcher_internal

struct Matcher::Frame {
  int32_t node = 0;  // the grammar node this frame matches
  uint8_t state = matcher_internal::kPending;
  uint8_t ws = 0;    // the whitespace before the next token (kNoSpace, kOneSpace, kNewline + n)
  uint16_t aux = 0;  // strings and keys: \u digits or UTF-8 continuation bytes to come
  // Arrays: elements so far; strings: code points so far; literals: bytes taken; keys: bytes
  // taken while a listed name still matches (else 0);
  // objects: after a key, the node of its value.
  int32_t count = 0;
  // Objects: properties present; keys: properties whose key text matches so far;
  // literals: the range [low 32 bits, high 32 bits) of literals that match so far.
  uint64_t bits = 0;

  friend bool operator==(const Frame&, const Frame&) = default;
};

struct Matcher::Stack {
  std::vector<Frame> frames;
  bool dead = false;  // Advance's scratch only: this alternative did not survive the byte
};

namespace matcher_internal {

using Node = Grammar::Node;
using Frame = Matcher::Frame;
using Stack = Matcher::Stack;
using Frames = std::vector<Frame>;

inline bool IsSpace(uint8_t byte) {
  return byte == ' ' || byte == '\n' || byte == '\r' || byte == '\t';
}

// The whitespace between two tokens of the JSON text, one byte more (Frame::ws).
Outcome TakeSpace(Frame& frame, uint8_t byte);
// A frame that starts matching `node` (a concrete node, or kPending's choice).
Frame Fresh(const std::vector<Node>& nodes, int32_t node);
// Feeds `byte` to the top frame, an object, array, string, key or number.
Outcome FrameByte(const std::vector<Node>& nodes, Frames& frames, uint8_t byte);

// A number frame in a state where the number may end...
inline bool IsNumberEnd(uint8_t state) {
  return state == kNumZero || state == kNumInt || state == kNumFrac || state == kNumExp;
}
// ...and whether it may end here (within its range), or may grow by a digit, a point or an
// exponent.
bool NumberComplete(const Node& node, const Frame& frame);
bool NumberCanGrow(const Node& node, const Frame& frame);

}  // namespace matcher_internal
}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_MATCHER_FRAMES_H_
