// Bearer tokens: the set a server accepts (--auth-token-file or RINGSERVE_AUTH_TOKEN; the
// router's for every call, a worker's for its HTTP API),
// the constant-time comparison that checks a presented one, and the "authorization"
// metadata that carries it (RFC 6750: "Bearer <token>").
#ifndef RINGSERVE_COMMON_AUTH_TOKEN_H_
#define RINGSERVE_COMMON_AUTH_TOKEN_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ringserve {

// The gRPC metadata key (lower case, as HTTP/2 carries it) and the scheme of its value.
inline constexpr char kAuthorizationKey[] = "authorization";

// Whether `a` and `b` hold the same bytes, in time that depends on their lengths only:
// every position up to the longer length is compared and the differences are OR-ed
// together, with no exit at the first differing byte and none when the lengths differ,
// so the time a wrong guess takes says nothing about how much of it was right.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// The token of an "authorization" value "Bearer <token>" (the scheme matched without
// regard to case, RFC 7235), or nullopt for any other value.
std::optional<absl::string_view> BearerToken(absl::string_view authorization);

// The tokens a router accepts. Each client may get its own, which then is its identity
// for per-client limits. Thread: any; immutable after creation.
class TokenSet {
 public:
  TokenSet() = default;  // empty: authentication off

  // One token per line; surrounding whitespace is trimmed, blank lines and lines starting
  // with '#' are skipped. INVALID_ARGUMENT (naming `source` and the line, never the
  // token) when no token is left or one holds a character outside printable ASCII or a
  // space, which a metadata value could not carry.
  static absl::StatusOr<TokenSet> Parse(absl::string_view text, absl::string_view source);
  // Parse on the contents of `path`; NOT_FOUND / PERMISSION_DENIED naming it.
  static absl::StatusOr<TokenSet> FromFile(const std::string& path);

  bool empty() const { return tokens_.empty(); }
  int size() const { return static_cast<int>(tokens_.size()); }

  // The index of the token equal to `presented`, or -1. Every token is compared in
  // constant time and the loop never stops early, so the time reveals neither whether
  // nor which token matched.
  int Find(absl::string_view presented) const;

 private:
  std::vector<std::string> tokens_;
};

// Where a server's tokens come from when no file names them: one token.
inline constexpr char kAuthTokenEnv[] = "RINGSERVE_AUTH_TOKEN";

// The tokens of `file` (--auth-token-file) when it is named, else RINGSERVE_AUTH_TOKEN's when
// it is set and not empty, else none (an empty set: authentication off).
absl::StatusOr<TokenSet> LoadTokens(const std::string& file);

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_AUTH_TOKEN_H_
