// ringserve-cli: talks to a ringserve router or worker. Global flags (--target,
// --timeout-s, --json) come before or after the command name. Exit status: 0 success,
// 1 a failed call (printed as "error: CODE: message"), 2 a bad command line.
#include <algorithm>
#include <cstring>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "tools/ringserve-cli/cli.h"

namespace {

using ringserve::tools::ArgParser;
using namespace ringserve::tools::cli;  // NOLINT(build/namespaces): the commands

struct Command {
  const char* name;
  const char* summary;
  absl::Status (*run)(CommandArgs);
};

constexpr Command kCommands[] = {
    {"generate", "stream a completion for a session", RunGenerate},
    {"chat", "talk with the model: a line from stdin a turn, replies streamed", RunChat},
    {"fork", "copy a session into new ones that share its KV blocks", RunFork},
    {"close", "forget a session", RunClose},
    {"tokenize", "tokenize text with the model's tokenizer", RunTokenize},
    {"detokenize", "the text of token ids", RunDetokenize},
    {"embed", "embed texts: each one's last hidden state, normalized", RunEmbed},
    {"info", "describe the model and the worker's limits", RunInfo},
    {"stats", "worker statistics (the router asks every worker)", RunStats},
    {"drain", "stop admitting work (Kubernetes preStop)", RunDrain},
    {"load-adapter", "load a LoRA adapter while serving (the router: on every worker)",
     RunLoadAdapter},
    {"unload-adapter", "unload a LoRA adapter (the router: from every worker)", RunUnloadAdapter},
    {"health", "grpc.health.v1 check; exit 0 only when SERVING", RunHealth},
};

std::string Usage() {
  std::string out =
      "usage: ringserve-cli [--target HOST:PORT] [--timeout-s S] [--json] COMMAND [flags]\n"
      "       [--tls-ca PEM [--tls-cert PEM --tls-key PEM]] [--token T (or env RINGSERVE_TOKEN)]\n"
      "       ringserve-cli COMMAND --help\n\ncommands:\n";
  for (const Command& c : kCommands) absl::StrAppend(&out, "  ", c.name, "\t", c.summary, "\n");
  return out;
}

// The index of the command name: the first argument that is neither a flag nor the value
// of a global flag given as "--flag value".
int CommandIndex(int argc, char** argv) {
  int i = 1;
  while (i < argc && std::strncmp(argv[i], "--", 2) == 0) {
    const std::string arg = argv[i];
    const bool takes_value =
        arg == "--target" || arg == "--timeout-s" || ringserve::tools::ClientSecurity::IsFlag(arg);
    i += takes_value ? 2 : 1;
  }
  return i;
}

int Fail(const absl::Status& status) {
  if (IsUsageError(status)) {
    std::cerr << "ringserve-cli: " << status.message() << " (see --help)\n";
    return 2;
  }
  std::cerr << "error: " << absl::StatusCodeToString(status.code()) << ": " << status.message()
            << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const int index = CommandIndex(argc, argv);
  CommandArgs args{argc, argv, index + 1, {}};
  ArgParser global;
  args.common.Register(global);
  global.SetUsage(Usage());
  // --help before the command is the tool's help; Parse prints it and exits.
  if (absl::Status s = global.Parse(std::min(index, argc), argv); !s.ok()) {
    return Fail(UsageError(s));
  }
  if (index >= argc) {
    std::cerr << Usage();
    return 2;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[index], c.name) != 0) continue;
    const absl::Status status = c.run(args);
    return status.ok() ? 0 : Fail(status);
  }
  std::cerr << "ringserve-cli: unknown command '" << argv[index] << "'\n" << Usage();
  return 2;
}
