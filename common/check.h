// Invariant checks that hold in release builds. A failed check is a ringserve bug, never a
// user error: user errors travel as absl::Status.
#ifndef RINGSERVE_COMMON_CHECK_H_
#define RINGSERVE_COMMON_CHECK_H_

namespace ringserve::internal {
[[noreturn]] void CheckFailed(const char* expr, const char* file, int line, const char* msg);
}  // namespace ringserve::internal

#define RS_CHECK(cond)                                                          \
  do {                                                                          \
    if (!(cond)) [[unlikely]]                                                   \
      ::ringserve::internal::CheckFailed(#cond, __FILE__, __LINE__, nullptr);   \
  } while (0)

#define RS_CHECK_MSG(cond, msg)                                                 \
  do {                                                                          \
    if (!(cond)) [[unlikely]]                                                   \
      ::ringserve::internal::CheckFailed(#cond, __FILE__, __LINE__, (msg));     \
  } while (0)

#ifdef NDEBUG
#define RS_DCHECK(cond) \
  do {                  \
  } while (false && (cond))
#else
#define RS_DCHECK(cond) RS_CHECK(cond)
#endif

#endif  // RINGSERVE_COMMON_CHECK_H_
