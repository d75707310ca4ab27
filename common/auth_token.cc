#include "common/auth_token.h"

#include <algorithm>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/text_file.h"

namespace ringserve {
namespace {

constexpr absl::string_view kBearerScheme = "bearer ";

bool IsTokenChar(char c) { return c > ' ' && c < 0x7f; }

}  // namespace

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  // volatile keeps the compiler from turning the OR-chain back into an early exit.
  volatile unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    // Positions past the end of the shorter string compare a zero byte; the length check
    // above already made the result false, this only keeps the work the same.
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    difference = difference | static_cast<unsigned char>(x ^ y);
  }
  return difference == 0;
}

std::optional<absl::string_view> BearerToken(absl::string_view authorization) {
  if (authorization.size() <= kBearerScheme.size() ||
      !absl::EqualsIgnoreCase(authorization.substr(0, kBearerScheme.size()), kBearerScheme)) {
    return std::nullopt;
  }
  return absl::StripAsciiWhitespace(authorization.substr(kBearerScheme.size()));
}

absl::StatusOr<TokenSet> TokenSet::Parse(absl::string_view text, absl::string_view source) {
  TokenSet set;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    if (!std::all_of(line.begin(), line.end(), IsTokenChar)) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": the token on line ", line_number,
          " holds a space or a character outside printable ASCII (not allowed in metadata)"));
    }
    set.tokens_.emplace_back(line);
  }
  if (set.tokens_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, " holds no token"));
  }
  return set;
}

absl::StatusOr<TokenSet> TokenSet::FromFile(const std::string& path) {
  RS_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path, "auth token file"));
  return Parse(text, absl::StrCat("auth token file '", path, "'"));
}

int TokenSet::Find(absl::string_view presented) const {
  int found = -1;
  for (int i = 0; i < size(); ++i) {
    // No break: the same work whichever token (if any) matches.
    const bool equal = ConstantTimeEquals(presented, tokens_[i]);
    found = equal ? i : found;
  }
  return found;
}

absl::StatusOr<TokenSet> LoadTokens(const std::string& file) {
  if (!file.empty()) return TokenSet::FromFile(file);
  const char* env_token = std::getenv(kAuthTokenEnv);
  if (env_token != nullptr && *env_token != '\0') return TokenSet::Parse(env_token, kAuthTokenEnv);
  return TokenSet();
}

}  // namespace ringserve
