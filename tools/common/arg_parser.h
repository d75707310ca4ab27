// Command-line parsing for ringserve's tools: --name value, --name=value, boolean --flag,
// repeatable flags (every --prompt is kept, commas and all), positional arguments.
#ifndef RINGSERVE_TOOLS_COMMON_ARG_PARSER_H_
#define RINGSERVE_TOOLS_COMMON_ARG_PARSER_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace ringserve::tools {

// The values an integer flag accepts; Parse refuses others, naming the flag and the range.
struct IntRange {
  int64_t min = std::numeric_limits<int64_t>::min();
  int64_t max = std::numeric_limits<int64_t>::max();
};

class ArgParser {
 public:
  void AddString(const std::string& name, std::string* out, const std::string& help);
  void AddInt(const std::string& name, int64_t* out, const std::string& help, IntRange range = {});
  void AddInt(const std::string& name, int* out, const std::string& help, IntRange range = {});
  void AddFloat(const std::string& name, double* out, const std::string& help);
  void AddBool(const std::string& name, bool* out, const std::string& help);
  void AddRepeated(const std::string& name, std::vector<std::string>* out, const std::string& help);
  // Printed above the flags by --help (e.g. "usage: tool command [flags]").
  void SetUsage(std::string usage) { usage_ = std::move(usage); }

  // Parses argv[first..argc). Unknown flags and bad values are INVALID_ARGUMENT naming
  // the flag. Arguments that are not flags are collected in positional(). --help prints
  // Help() to stdout and exits the process with status 0.
  absl::Status Parse(int argc, char** argv, int first = 1);
  const std::vector<std::string>& positional() const { return positional_; }
  // Whether --name appeared on the command line, for flags whose default means "unset"
  // (an optional proto field) rather than a value.
  bool IsSet(const std::string& name) const;
  std::string Help() const;

 private:
  struct Flag {
    std::string name;
    std::string help;
    bool is_bool = false;
    std::function<absl::Status(const std::string&)> set;
  };
  const Flag* Find(const std::string& name) const;

  std::vector<Flag> flags_;
  std::vector<std::string> positional_;
  std::vector<std::string> set_names_;
  std::string usage_;
};

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_COMMON_ARG_PARSER_H_
