#include "tests/unit/tokenizer/test_util.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "tests/unit/shared_dir.h"

namespace ringserve::tokenizer::testing {

std::string SharedFile(const std::string& relative) {
  const std::string path = SharedDataDir() + "/" + relative;
  return std::filesystem::exists(path) ? path : "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string RandomText(std::mt19937& rng, int max_pieces) {
  static const std::vector<std::string> kPieces = {
      "a",       "b",      "Z",      "the",  " ",      " ",    "  ",
      "   ",     "\n",     "\n\n",   "\t",   "\r\n",   " \t ", "7",
      "42",      "1234",   ".",      ",",    "!",      "?",    "'s",
      "'LL",     "(",      ")",      "<",    ">",      "$",    "-",
      "é",       "ü",      "ß",      "ñ",    "Å",      "ça",   "Ω",
      "½",       "€",      "—",      "“",    "”",      "中",   "文",
      "日本語",  "한국어", "ㄱ",     "🙂", "🚀",      "🦙", "😶\u200d🌫️",
      "✅",       "\u00a0", "\u3000", "нещо", "Führer", "ࠀ",    "\u2028",
      "A\u0301", "𝔘"};
  std::uniform_int_distribution<int> num(0, max_pieces);
  std::uniform_int_distribution<size_t> pick(0, kPieces.size() - 1);
  std::string text;
  for (int i = num(rng); i > 0; --i) text += kPieces[pick(rng)];
  return text;
}

}  // namespace ringserve::tokenizer::testing
