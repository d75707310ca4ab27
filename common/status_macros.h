// Early-return helpers for absl::Status / absl::StatusOr, used across module boundaries.
#ifndef RINGSERVE_COMMON_STATUS_MACROS_H_
#define RINGSERVE_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RS_CONCAT_INNER_(a, b) a##b
#define RS_CONCAT_(a, b) RS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define RS_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status rs_status_ = (expr);      \
    if (!rs_status_.ok()) return rs_status_; \
  } while (0)

// `RS_ASSIGN_OR_RETURN(auto x, MakeX());` assigns the value or returns the error.
#define RS_ASSIGN_OR_RETURN(lhs, expr) \
  RS_ASSIGN_OR_RETURN_IMPL_(RS_CONCAT_(rs_statusor_, __LINE__), lhs, expr)
// `lhs` may be a declaration (`auto x`) and `tmp` is a name, so neither can be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define RS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp).status();  \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)

#endif  // RINGSERVE_COMMON_STATUS_MACROS_H_
