// ringserve-worker as a process: what can be checked without the model is checked before it
// loads (the listen port was checked only after the model had loaded, seconds to minutes
// for a real one), and a port another server holds is refused rather than shared.
#include <unistd.h>

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/reuse_port_listener.h"
#include "tests/unit/tools/run_tool.h"

namespace ringserve::tools::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A model path that does not exist: a worker that reached the model would fail on it.
constexpr char kMissingModel[] = "--model /nonexistent/model.gguf ";
constexpr char kTinyWorker[] =
    "--dummy-weights --preset tiny --threads 1 --kv-memory 16MiB --host 127.0.0.1 ";

TEST(WorkerStartTest, BadFlagsAreRefusedBeforeTheModelLoads) {
  for (const char* flag : {"--port 70000", "--metrics-port -1", "--kv-blocks -1",
                           "--drain-timeout-s -1", "--min-step-ms -1", "--max-seqs 0",
                           "--threads -1", "--kv-memory 1.5", "--kv-memory 1e30"}) {
    const ToolRun run = RunTool("ringserve-worker", kMissingModel + std::string(flag));
    EXPECT_EQ(run.exit_code, 2) << flag << ": " << run.err;
    const std::string name = std::string(flag).substr(0, std::string(flag).find(' '));
    EXPECT_THAT(run.err, HasSubstr(name + ":")) << flag;
    EXPECT_THAT(run.err, Not(HasSubstr("nonexistent"))) << flag;
  }
}

TEST(WorkerStartTest, AMetricsPortInUseFailsBeforeTheModelLoads) {
  ::ringserve::testing::ReusePortListener holder;
  const ToolRun run = RunTool("ringserve-worker", absl::StrCat(kMissingModel, "--host 127.0.0.1 ",
                                                               "--metrics-port ", holder.port()));
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_THAT(run.err,
              HasSubstr(absl::StrCat("metrics: cannot listen on 127.0.0.1:", holder.port())));
  EXPECT_THAT(run.err, Not(HasSubstr("nonexistent")));
}

// gRPC's default SO_REUSEPORT let a second worker bind a port in use and start; the kernel
// then split new connections between the two. (Without the fix this run lasts until its
// timeout: exit 124.) The port is tried before the model loads, which can take minutes.
TEST(WorkerStartTest, AGrpcPortInUseIsRefusedBeforeTheModelLoads) {
  ::ringserve::testing::ReusePortListener holder;
  for (const std::string& model :
       {std::string(kTinyWorker), absl::StrCat(kMissingModel, "--host 127.0.0.1 ")}) {
    const ToolRun run =
        RunTool("ringserve-worker", absl::StrCat(model, "--port ", holder.port()), 20);
    EXPECT_EQ(run.exit_code, 1) << run.err;
    EXPECT_THAT(run.err, HasSubstr(absl::StrCat("cannot listen on 127.0.0.1:", holder.port())));
    EXPECT_THAT(run.err, Not(HasSubstr("nonexistent")));
  }
}

// The CPU backend backs memory only when written: a pool beyond the machine's memory used
// to start (--kv-memory 100GB on 24 GiB) and be killed for memory as it filled.
TEST(WorkerStartTest, ACpuKvPoolBeyondPhysicalMemoryIsRefused) {
  const int64_t physical = int64_t{sysconf(_SC_PHYS_PAGES)} * sysconf(_SC_PAGE_SIZE);
  const ToolRun run = RunTool("ringserve-worker",
                              absl::StrCat(kTinyWorker, "--port 0 --kv-memory ", 2 * physical), 20);
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_THAT(run.err, HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_THAT(run.err, HasSubstr("MiB this process may ever use"));
}

}  // namespace
}  // namespace ringserve::tools::testing
