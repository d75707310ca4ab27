// Small tokenizer.json documents for the tokenizer tests and the tokenizer fuzzer: one of
// each model family, self-contained (no reference data needed).
#ifndef RINGSERVE_TESTS_UNIT_TOKENIZER_JSON_FIXTURES_H_
#define RINGSERVE_TESTS_UNIT_TOKENIZER_JSON_FIXTURES_H_

#include "nlohmann/json.hpp"

namespace ringserve::tokenizer::testing {

// A GPT-2 style byte-level BPE: the 256 byte characters, three merges, one special.
nlohmann::json ByteLevelFixture();

// A Llama-2 style SentencePiece BPE with byte fallback.
nlohmann::json SentencePieceFixture();

}  // namespace ringserve::tokenizer::testing

#endif  // RINGSERVE_TESTS_UNIT_TOKENIZER_JSON_FIXTURES_H_
