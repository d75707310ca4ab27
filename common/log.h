// Structured logs: one logfmt line per event on stderr, e.g.
//   ts=2026-11-25T02:35:48.123Z level=info component=router msg="worker joined"
//   worker=10.0.0.7:50051
// logfmt keeps lines greppable by a person and parseable by a collector without a schema.
#ifndef RINGSERVE_COMMON_LOG_H_
#define RINGSERVE_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/time/time.h"

namespace ringserve {

enum class LogLevel { kInfo, kWarning, kError };

struct LogField {
  std::string_view key;
  std::string value;
};

// The line Log() writes, without the newline. Values with spaces, quotes, '=' or control
// characters are quoted with \" \\ \n escapes; keys are written as given.
std::string FormatLogLine(absl::Time time, LogLevel level, std::string_view component,
                          std::string_view message, std::initializer_list<LogField> fields);

// Writes one line to stderr with a single write, so lines from concurrent threads do not
// interleave. Thread-safe.
void Log(LogLevel level, std::string_view component, std::string_view message,
         std::initializer_list<LogField> fields = {});

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_LOG_H_
