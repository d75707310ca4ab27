#include "tests/unit/tools/run_tool.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace ringserve::tools::testing {

ToolRun RunTool(const std::string& tool, const std::string& args, int timeout_s) {
  char err_path[] = "/tmp/ringserve-tool-stderr-XXXXXX";
  const int fd = mkstemp(err_path);
  if (fd >= 0) close(fd);
  const std::string limit =
      timeout_s > 0 ? "timeout -k 2 " + std::to_string(timeout_s) + " " : std::string();
  const std::string command =
      limit + std::string(RINGSERVE_BIN_DIR) + "/" + tool + " " + args + " 2>" + err_path;
  ToolRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) run.out.append(buffer, n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_path);
  std::stringstream text;
  text << err.rdbuf();
  run.err = text.str();
  std::remove(err_path);
  return run;
}

}  // namespace ringserve::tools::testing
