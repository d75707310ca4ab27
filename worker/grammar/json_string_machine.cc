#include "worker/grammar/json_string_machine.h"

#include <string_view>

#include "absl/strings/ascii.h"
#include "worker/grammar/matcher.h"

namespace ringserve::grammar {
namespace {

// A byte that starts a code point (or ends the string) inside a string body.
StringStep StringBodyByte(uint8_t& state, uint16_t& aux, uint8_t byte) {
  // UTF-8 lead bytes: continuation bytes to come, and which range the first one must be
  // in (index into kContinuation) so that no overlong form or surrogate gets through.
  int remaining = 0;
  int range = 0;
  if (byte == '"') return StringStep::kClose;
  if (byte == '\\') {
    state = kEscape;
    return StringStep::kCodePoint;
  }
  if (byte < 0x20) return StringStep::kReject;
  if (byte < 0x80) return StringStep::kCodePoint;
  if (byte >= 0xC2 && byte <= 0xDF) {
    remaining = 1;
  } else if (byte >= 0xE0 && byte <= 0xEF) {
    remaining = 2;
    range = byte == 0xE0 ? 1 : (byte == 0xED ? 2 : 0);
  } else if (byte >= 0xF0 && byte <= 0xF4) {
    remaining = 3;
    range = byte == 0xF0 ? 3 : (byte == 0xF4 ? 4 : 0);
  } else {
    return StringStep::kReject;  // a continuation byte, C0, C1 or F5..FF
  }
  state = kUtf8;
  aux = static_cast<uint16_t>(remaining | (range << 4));
  return StringStep::kCodePoint;
}

StringStep HexByte(uint8_t& state, uint16_t& aux, uint8_t byte) {
  if (!absl::ascii_isxdigit(byte)) return StringStep::kReject;
  const int digit = byte <= '9' ? byte - '0' : (byte | 0x20) - 'a' + 10;
  const bool low_half = (aux & kLowHalf) != 0;
  if ((aux & kHexLeft) == 4) {
    if (digit == 0xD) {
      aux |= kFirstD;
    } else if (low_half) {
      return StringStep::kReject;
    }
  } else if ((aux & kHexLeft) == 3 && (aux & kFirstD) != 0) {
    // D8..DB: a high surrogate, DC..DF: a low one; only a pair is a code point.
    const bool low = digit >= 0xC;
    if (low != low_half) return StringStep::kReject;
    if (digit >= 0x8 && !low) aux |= kHighHalf;
  }
  --aux;
  if ((aux & kHexLeft) == 0) state = (aux & kHighHalf) != 0 ? kPairSlash : kBody;
  return StringStep::kMore;
}

}  // namespace

StringStep StringByte(uint8_t& state, uint16_t& aux, uint8_t byte) {
  static constexpr uint8_t kContinuation[5][2] = {
      {0x80, 0xBF}, {0xA0, 0xBF}, {0x80, 0x9F}, {0x90, 0xBF}, {0x80, 0x8F}};
  switch (state) {
    case kBody:
      return StringBodyByte(state, aux, byte);
    case kEscape:
      if (byte == 'u') {
        state = kHex;
        aux = 4;
        return StringStep::kMore;
      }
      if (std::string_view("\"\\/bfnrt").find(static_cast<char>(byte)) == std::string_view::npos) {
        return StringStep::kReject;
      }
      state = kBody;
      return StringStep::kMore;
    case kHex:
      return HexByte(state, aux, byte);
    case kPairSlash:
      if (byte != '\\') return StringStep::kReject;
      state = kPairU;
      return StringStep::kMore;
    case kPairU:
      if (byte != 'u') return StringStep::kReject;
      state = kHex;
      aux = 4 | kLowHalf;
      return StringStep::kMore;
    default: {
      const uint8_t* range = kContinuation[aux >> 4];
      if (byte < range[0] || byte > range[1]) return StringStep::kReject;
      aux = static_cast<uint16_t>((aux & 0xF) - 1);
      if (aux == 0) state = kBody;
      return StringStep::kMore;
    }
  }
}

bool IsPlainStringText(std::string_view bytes) {
  uint8_t state = kBody;
  uint16_t aux = 0;
  for (const char c : bytes) {
    const StringStep step = StringByte(state, aux, static_cast<uint8_t>(c));
    if (step == StringStep::kReject || step == StringStep::kClose || state == kEscape) {
      return false;
    }
  }
  return !bytes.empty() && state == kBody;
}

}  // namespace ringserve::grammar
