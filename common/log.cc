#include "common/log.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ringserve {
namespace {

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

bool NeedsQuotes(std::string_view value) {
  if (value.empty()) return true;
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

void AppendValue(std::string* out, std::string_view value) {
  if (!NeedsQuotes(value)) {
    out->append(value);
    return;
  }
  out->push_back('"');
  for (char c : value) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      default:
        out->push_back(static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
    }
  }
  out->push_back('"');
}

}  // namespace

std::string FormatLogLine(absl::Time time, LogLevel level, std::string_view component,
                          std::string_view message, std::initializer_list<LogField> fields) {
  std::string line =
      absl::StrCat("ts=", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone()),
                   " level=", LevelName(level), " component=");
  AppendValue(&line, component);
  line.append(" msg=");
  AppendValue(&line, message);
  for (const LogField& field : fields) {
    // Debian's Abseil has its own string_view, which std::string_view does not convert to.
    line.push_back(' ');
    line.append(field.key);
    line.push_back('=');
    AppendValue(&line, field.value);
  }
  return line;
}

void Log(LogLevel level, std::string_view component, std::string_view message,
         std::initializer_list<LogField> fields) {
  std::string line = FormatLogLine(absl::Now(), level, component, message, fields);
  line.push_back('\n');
  // One write(2) per line: stderr is unbuffered, and a single write of a short line is
  // not interleaved with other threads' lines.
  const ssize_t written = ::write(STDERR_FILENO, line.data(), line.size());
  (void)written;  // nowhere left to report a failed log write
}

}  // namespace ringserve
