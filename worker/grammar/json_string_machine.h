// The byte machine of a JSON string's body (RFC 8259 strings, valid UTF-8, escapes with
// surrogate pairs decoded), shared by string values and object keys. Private to
// worker/grammar: the matcher keeps `state` and `aux` in its frames.
#ifndef RINGSERVE_WORKER_GRAMMAR_JSON_STRING_MACHINE_H_
#define RINGSERVE_WORKER_GRAMMAR_JSON_STRING_MACHINE_H_

#include <cstdint>

namespace ringserve::grammar {

// The string machine's states, relative to kStrBody / kKeyBody. After a \u escape of a
// high surrogate the low one must follow (kPairSlash, kPairU), so that the text decodes.
enum StringState : uint8_t { kBody, kEscape, kHex, kUtf8, kPairSlash, kPairU };

// kHex's aux: the digits still to come, and what the escape has shown so far.
inline constexpr uint16_t kHexLeft = 7;
inline constexpr uint16_t kLowHalf = 8;    // the second escape of a surrogate pair
inline constexpr uint16_t kFirstD = 16;    // the first digit was D: maybe a surrogate
inline constexpr uint16_t kHighHalf = 32;  // a high surrogate: its low half must follow

// What a byte did to the string.
enum class StringStep : uint8_t {
  kReject,     // it may not come here
  kCodePoint,  // it starts a code point (a character or an escape)
  kMore,       // it continues one
  kClose,      // the closing quote
};

// Feeds one byte to the machine in (state, aux), starting from kBody, 0.
StringStep StringByte(uint8_t& state, uint16_t& aux, uint8_t byte);

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_JSON_STRING_MACHINE_H_
