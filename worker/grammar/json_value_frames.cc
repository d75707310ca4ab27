// The byte machines of JSON value frames.
#include <bit>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "worker/grammar/grammar_nodes.h"
#include "worker/grammar/json_string_machine.h"
#include "worker/grammar/matcher_frames.h"
#include "worker/grammar/number_range.h"
#include "worker/grammar/regex.h"
#include "worker/grammar/string_formats.h"

namespace ringserve::grammar::matcher_internal {
namespace {

// Frame::ws between two tokens of the JSON text: nothing yet, one space (all there may be),
// or a newline and then 0..kMaxIndent indentation bytes (kNewline + their count).
constexpr uint8_t kNoSpace = 0;
constexpr uint8_t kOneSpace = 1;
constexpr uint8_t kNewline = 2;
static_assert(kNewline + kMaxIndent <= 255);
bool IsDigit(uint8_t byte) { return byte >= '0' && byte <= '9'; }

uint64_t AllProperties(const Node& node) {
  const size_t n = node.properties.size();
  return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
}

// Another key may follow: an extra key, or a listed property not yet present.
bool MayAddKey(const Node& node, uint64_t present) {
  return node.additional >= 0 || (AllProperties(node) & ~present) != 0;
}

// A formatted string (string_formats.h) keeps its cursor in the frame: the position in
// `count`, the date's digits in `bits`, the time's tail in `aux`.
Outcome FormattedStringByte(const Node& node, Frames& frames, uint8_t byte) {
  Frame& frame = frames.back();
  FormatCursor cursor{.position = frame.count, .digits = frame.bits, .tail = frame.aux};
  if (byte == '"') {
    if (!FormatComplete(node.format, cursor)) return Outcome::kReject;
    frames.pop_back();
    return Outcome::kTake;
  }
  if (!FormatTakes(node.format, cursor, byte)) return Outcome::kReject;
  frame.count = cursor.position;
  frame.bits = cursor.digits;
  frame.aux = cursor.tail;
  return Outcome::kTake;
}

// A string under a "pattern" keeps its automaton's state in `count`. The automaton takes no
// quote, so a quote always closes the string, where the text so far matches.
Outcome PatternStringByte(const Node& node, Frames& frames, uint8_t byte) {
  Frame& frame = frames.back();
  if (byte == '"') {
    if (!node.pattern->Accepting(frame.count)) return Outcome::kReject;
    frames.pop_back();
    return Outcome::kTake;
  }
  const int32_t next = node.pattern->Next(frame.count, byte);
  if (next == RegexDfa::kDead) return Outcome::kReject;
  frame.count = next;
  return Outcome::kTake;
}

Outcome StringFrameByte(const Node& node, Frames& frames, uint8_t byte) {
  Frame& frame = frames.back();
  if (frame.state == kStrOpen) {
    if (byte != '"') return Outcome::kReject;
    frame.state = kStrBody;
    return Outcome::kTake;
  }
  if (node.format != StringFormat::kNone) return FormattedStringByte(node, frames, byte);
  if (node.pattern != nullptr) return PatternStringByte(node, frames, byte);
  uint8_t state = frame.state - kStrBody;
  switch (StringByte(state, frame.aux, byte)) {
    case StringStep::kReject:
      return Outcome::kReject;
    case StringStep::kCodePoint:
      if (frame.count >= node.max) return Outcome::kReject;
      // Only the comparisons with min and max read the count, so without a max it stops at
      // min: every later code point leaves the same state, and a long string's steps share
      // one mask (TokenConstraint caches masks by state).
      if (node.max != kUnbounded || frame.count < node.min) ++frame.count;
      break;
    case StringStep::kMore:
      break;
    case StringStep::kClose:
      if (frame.count < node.min) return Outcome::kReject;
      frames.pop_back();
      return Outcome::kTake;
  }
  frame.state = kStrBody + state;
  return Outcome::kTake;
}

// An object key: the exact text of a listed property not yet present, or, where extra keys
// are allowed, any other string. Both are tracked at once (no alternatives to fork).
Outcome KeyByte(const Node& node, Frames& frames, uint8_t byte) {
  Frame& key = frames.back();
  Frame& object = frames[frames.size() - 2];
  const size_t at = static_cast<size_t>(key.count) + 1;  // the key texts start with '"'
  uint64_t matching = 0;
  int completed = -1;
  for (uint64_t bits = key.bits; bits != 0; bits &= bits - 1) {
    const int i = std::countr_zero(bits);
    const std::string& text = node.properties[i].key;
    if (at < text.size() && static_cast<uint8_t>(text[at]) == byte) {
      matching |= uint64_t{1} << i;
      if (at + 1 == text.size()) completed = i;
    }
  }
  if (completed >= 0) {
    if ((object.bits >> completed & 1) != 0) return Outcome::kReject;  // at most once
    object.bits |= uint64_t{1} << completed;
    object.count = node.properties[completed].value;
    frames.pop_back();
    return Outcome::kTake;
  }
  if (node.additional < 0) {
    if ((matching & ~object.bits) == 0) return Outcome::kReject;
  } else {
    uint8_t state = key.state - kKeyBody;
    const StringStep step = StringByte(state, key.aux, byte);
    if (step == StringStep::kReject) return Outcome::kReject;
    if (step == StringStep::kClose) {  // not a listed name (that completed above)
      object.count = node.additional;
      frames.pop_back();
      return Outcome::kTake;
    }
    key.state = kKeyBody + state;
  }
  key.bits = matching;
  // Only the listed names still matching read the count; once none does, an extra key's
  // text is free and each step's state is the same, so its masks come from the cache.
  key.count = matching == 0 ? 0 : key.count + 1;
  return Outcome::kTake;
}

Outcome ObjectByte(const Node& node, Frames& frames, uint8_t byte) {
  Frame& frame = frames.back();
  if (frame.state == kObjOpen) {
    if (byte != '{' || frames.size() > kMaxNesting) return Outcome::kReject;
    frame.state = kObjFirst;
    return Outcome::kTake;
  }
  if (IsSpace(byte)) return TakeSpace(frame, byte);
  frame.ws = 0;
  const bool may_close = (node.required & ~frame.bits) == 0;
  switch (frame.state) {
    case kObjFirst:
    case kObjNext:
      if (byte == '}' && frame.state == kObjFirst && may_close) break;
      if (byte != '"' || !MayAddKey(node, frame.bits)) return Outcome::kReject;
      frame.state = kObjColon;
      frames.push_back(Frame{.node = frame.node, .state = kKeyBody, .bits = AllProperties(node)});
      return Outcome::kTake;
    case kObjColon: {
      if (byte != ':') return Outcome::kReject;
      frame.state = kObjAfterValue;
      const int32_t value = frame.count;
      frames.push_back(Frame{.node = value});
      return Outcome::kTake;
    }
    default:  // kObjAfterValue
      if (byte == ',' && MayAddKey(node, frame.bits)) {
        frame.state = kObjNext;
        return Outcome::kTake;
      }
      if (byte != '}' || !may_close) return Outcome::kReject;
      break;
  }
  frames.pop_back();  // the '}'
  return Outcome::kTake;
}

// The node of element `index` (from 0) of an array.
int32_t ElementNode(const Node& array, int32_t index) {
  return index < static_cast<int32_t>(array.prefix_items.size())
             ? array.prefix_items[static_cast<size_t>(index)]
             : array.items;
}

Outcome ArrayByte(const Node& node, Frames& frames, uint8_t byte) {
  Frame& frame = frames.back();
  if (frame.state == kArrOpen) {
    if (byte != '[' || frames.size() > kMaxNesting) return Outcome::kReject;
    frame.state = kArrFirst;
    return Outcome::kTake;
  }
  if (IsSpace(byte)) return TakeSpace(frame, byte);
  frame.ws = 0;
  if (byte == ']') {
    if (frame.count < node.min) return Outcome::kReject;
    frames.pop_back();
    return Outcome::kTake;
  }
  if (frame.state == kArrFirst) {  // the first element starts with this byte
    if (node.max == 0) return Outcome::kReject;
    frame.state = kArrAfterValue;
    frame.count = 1;
    frames.push_back(Frame{.node = ElementNode(node, 0)});
    return Outcome::kAgain;
  }
  if (byte != ',' || frame.count >= node.max) return Outcome::kReject;
  ++frame.count;
  frames.push_back(Frame{.node = ElementNode(node, frame.count - 1)});
  return Outcome::kTake;
}

// Numbers with a range (number_range.h): the frame keeps the digits' value in `bits`
// (integer and fraction digits together), a '-' in `aux`, and in `count` the digits after
// the point plus one (0: no point yet).
NumberRange RangeOf(const Node& node) {
  return {.min = node.int_min,
          .max = node.int_max,
          .multiple = node.multiple_of,
          .fraction_digits = node.fraction_digits};
}

NumberPrefix PrefixOf(const Frame& frame) {
  return {.negative = frame.aux != 0,
          .digits = frame.bits,
          .num_fraction = frame.count - 1,
          .zero = frame.state == kNumZero};
}

Outcome NumberByte(const Node& node, Frames& frames, uint8_t byte);

Outcome BoundedNumberByte(const Node& node, Frames& frames, uint8_t byte) {
  Frame& frame = frames.back();
  const NumberRange range = RangeOf(node);
  NumberPrefix next = PrefixOf(frame);
  const bool digit = IsDigit(byte);
  const auto take_digit = [&](State state) {
    if (frame.bits > (std::numeric_limits<uint64_t>::max() - 9) / 10) return Outcome::kReject;
    next.digits = frame.bits * 10 + (byte - '0');
    next.zero = state == kNumZero;
    if (state == kNumFrac) next.num_fraction = frame.count;
    if (!Reachable(range, next)) return Outcome::kReject;
    frame.bits = next.digits;
    frame.state = state;
    if (state == kNumFrac) ++frame.count;
    return Outcome::kTake;
  };
  switch (frame.state) {
    case kNumStart:
      if (byte == '-') {
        if (range.min >= 0) return Outcome::kReject;
        frame.aux = 1;
        frame.state = kNumMinus;
        return Outcome::kTake;
      }
      [[fallthrough]];
    case kNumMinus:
      if (!digit) return Outcome::kReject;
      return take_digit(byte == '0' ? kNumZero : kNumInt);
    case kNumInt:
      if (digit) return take_digit(kNumInt);
      [[fallthrough]];
    case kNumZero:
      if (byte == '.' && range.fraction_digits > 0) {
        next.num_fraction = 0;
        if (!Reachable(range, next)) return Outcome::kReject;
        frame.state = kNumDot;
        frame.count = 1;
        return Outcome::kTake;
      }
      break;
    case kNumDot:
      return digit ? take_digit(kNumFrac) : Outcome::kReject;
    default:  // kNumFrac
      if (digit) return take_digit(kNumFrac);
      break;
  }
  // The number ends before this byte, which goes to the enclosing container.
  if (!InRange(range, PrefixOf(frame))) return Outcome::kReject;
  frames.pop_back();
  return Outcome::kAgain;
}

// JSON numbers; integers stop before a fraction or an exponent. A number ends at the first
// byte that cannot continue it, which then goes to the enclosing container.
Outcome NumberByte(const Node& node, Frames& frames, uint8_t byte) {
  if (node.bounded) return BoundedNumberByte(node, frames, byte);
  Frame& frame = frames.back();
  const bool digit = IsDigit(byte);
  const bool real = node.kind == NodeKind::kNumber;
  const auto go = [&](State state) {
    frame.state = state;
    return Outcome::kTake;
  };
  switch (frame.state) {
    case kNumStart:
      if (byte == '-') return go(kNumMinus);
      [[fallthrough]];
    case kNumMinus:
      if (byte == '0') return go(kNumZero);
      return digit ? go(kNumInt) : Outcome::kReject;
    case kNumInt:
      if (digit) return Outcome::kTake;
      [[fallthrough]];
    case kNumZero:
      if (real && byte == '.') return go(kNumDot);
      if (real && (byte == 'e' || byte == 'E')) return go(kNumE);
      break;
    case kNumDot:
      return digit ? go(kNumFrac) : Outcome::kReject;
    case kNumFrac:
      if (digit) return Outcome::kTake;
      if (byte == 'e' || byte == 'E') return go(kNumE);
      break;
    case kNumE:
      if (byte == '+' || byte == '-') return go(kNumESign);
      [[fallthrough]];
    case kNumESign:
      return digit ? go(kNumExp) : Outcome::kReject;
    default:  // kNumExp
      if (digit) return Outcome::kTake;
      break;
  }
  frames.pop_back();
  return Outcome::kAgain;
}

}  // namespace

Outcome TakeSpace(Frame& frame, uint8_t byte) {
  if (frame.ws == kNoSpace) {
    if (byte != ' ' && byte != '\n') return Outcome::kReject;
    frame.ws = byte == ' ' ? kOneSpace : kNewline;
    return Outcome::kTake;
  }
  const bool indents = byte == ' ' || byte == '\t';
  if (frame.ws == kOneSpace || !indents || frame.ws >= kNewline + kMaxIndent) {
    return Outcome::kReject;
  }
  ++frame.ws;
  return Outcome::kTake;
}

Frame Fresh(const std::vector<Node>& nodes, int32_t node) {
  Frame frame{.node = node};
  switch (nodes[node].kind) {
    case NodeKind::kObject:
      frame.state = kObjOpen;
      break;
    case NodeKind::kArray:
      frame.state = kArrOpen;
      break;
    case NodeKind::kString:
      frame.state = kStrOpen;
      break;
    case NodeKind::kNumber:
    case NodeKind::kInteger:
      frame.state = kNumStart;
      break;
    case NodeKind::kLiterals:
      frame.state = kLiteral;
      frame.bits = uint64_t{nodes[node].literals.size()} << 32;
      break;
    case NodeKind::kText:
      frame.state = kText;
      frame.count = RegexDfa::kStart;
      break;
    case NodeKind::kChoice:
      frame.state = kPending;
      break;
  }
  return frame;
}

bool NumberCanGrow(const Node& node, const Frame& frame) {
  Frames copy;
  for (const uint8_t byte : std::string_view("0123456789.eE")) {
    copy.assign(1, frame);
    if (NumberByte(node, copy, byte) == Outcome::kTake) return true;
  }
  return false;
}

bool NumberComplete(const Node& node, const Frame& frame) {
  return IsNumberEnd(frame.state) && (!node.bounded || InRange(RangeOf(node), PrefixOf(frame)));
}

Outcome FrameByte(const std::vector<Node>& nodes, Frames& frames, uint8_t byte) {
  const Frame& top = frames.back();
  const Node& node = nodes[top.node];
  if (top.state <= kObjNext) return ObjectByte(node, frames, byte);
  if (top.state <= kArrAfterValue) return ArrayByte(node, frames, byte);
  if (top.state <= kStrPairU) return StringFrameByte(node, frames, byte);
  if (top.state <= kKeyPairU) return KeyByte(node, frames, byte);
  return NumberByte(node, frames, byte);
}

}  // namespace ringserve::grammar::matcher_internal
