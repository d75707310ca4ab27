// RunTool: runs one of the built tools (build/bin) through the shell and captures its exit
// status, stdout and stderr, for tests that check a tool's behaviour end to end.
#ifndef RINGSERVE_TESTS_UNIT_TOOLS_RUN_TOOL_H_
#define RINGSERVE_TESTS_UNIT_TOOLS_RUN_TOOL_H_

#include <string>

namespace ringserve::tools::testing {

struct ToolRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// `args` is appended to the tool's path as shell words (quote them yourself). With
// timeout_s > 0 a tool still running then is stopped (exit_code 124), for servers a test
// expects to refuse to start.
ToolRun RunTool(const std::string& tool, const std::string& args, int timeout_s = 0);

}  // namespace ringserve::tools::testing

#endif  // RINGSERVE_TESTS_UNIT_TOOLS_RUN_TOOL_H_
