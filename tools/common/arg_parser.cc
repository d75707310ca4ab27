#include "tools/common/arg_parser.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ringserve::tools {
namespace {

absl::Status BadValue(const std::string& name, const std::string& value, const char* what) {
  return absl::InvalidArgumentError(absl::StrCat("--", name, ": '", value, "' is not ", what));
}

template <typename Int>
std::function<absl::Status(const std::string&)> IntSetter(const std::string& name, Int* out,
                                                          IntRange range) {
  return [out, name, range](const std::string& v) {
    Int value = 0;
    if (!absl::SimpleAtoi(v, &value)) return BadValue(name, v, "an integer");
    if (value < range.min || value > range.max) {
      const bool no_max = range.max == std::numeric_limits<int64_t>::max();
      return absl::InvalidArgumentError(
          no_max ? absl::StrCat("--", name, ": must be at least ", range.min, ", got ", v)
                 : absl::StrCat("--", name, ": must be in [", range.min, ", ", range.max, "], got ",
                                v));
    }
    *out = value;
    return absl::OkStatus();
  };
}

}  // namespace

void ArgParser::AddString(const std::string& name, std::string* out, const std::string& help) {
  flags_.push_back({name, help, false, [out](const std::string& v) {
                      *out = v;
                      return absl::OkStatus();
                    }});
}

void ArgParser::AddInt(const std::string& name, int64_t* out, const std::string& help,
                       IntRange range) {
  flags_.push_back({name, help, false, IntSetter(name, out, range)});
}

void ArgParser::AddInt(const std::string& name, int* out, const std::string& help, IntRange range) {
  flags_.push_back({name, help, false, IntSetter(name, out, range)});
}

void ArgParser::AddFloat(const std::string& name, double* out, const std::string& help) {
  flags_.push_back({name, help, false, [out, name](const std::string& v) {
                      return absl::SimpleAtod(v, out) ? absl::OkStatus()
                                                      : BadValue(name, v, "a number");
                    }});
}

void ArgParser::AddBool(const std::string& name, bool* out, const std::string& help) {
  flags_.push_back({name, help, true, [out, name](const std::string& v) {
                      if (v.empty() || v == "true" || v == "1") {
                        *out = true;
                      } else if (v == "false" || v == "0") {
                        *out = false;
                      } else {
                        return BadValue(name, v, "true or false");
                      }
                      return absl::OkStatus();
                    }});
}

void ArgParser::AddRepeated(const std::string& name, std::vector<std::string>* out,
                            const std::string& help) {
  flags_.push_back({name, help, false, [out](const std::string& v) {
                      out->push_back(v);
                      return absl::OkStatus();
                    }});
}

const ArgParser::Flag* ArgParser::Find(const std::string& name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

absl::Status ArgParser::Parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    if (name == "help" && Find(name) == nullptr) {
      // A tool's --help is an answer, not an error: print the flags and stop.
      if (!usage_.empty()) std::cout << usage_ << "\n\n";
      std::cout << "flags:\n" << Help();
      std::exit(0);
    }
    const Flag* flag = Find(name);
    if (flag == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (!has_value && !flag->is_bool) {
      if (i + 1 >= argc)
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      value = argv[++i];
    }
    if (absl::Status s = flag->set(value); !s.ok()) return s;
    set_names_.push_back(name);
  }
  return absl::OkStatus();
}

bool ArgParser::IsSet(const std::string& name) const {
  return std::find(set_names_.begin(), set_names_.end(), name) != set_names_.end();
}

std::string ArgParser::Help() const {
  std::string out;
  for (const Flag& f : flags_) absl::StrAppend(&out, "  --", f.name, "  ", f.help, "\n");
  return out;
}

}  // namespace ringserve::tools
