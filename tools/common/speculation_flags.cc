#include "tools/common/speculation_flags.h"

#include "absl/strings/str_cat.h"

namespace ringserve::tools {

void SpeculationFlags::Register(ArgParser& parser) {
  parser.AddInt("speculate", &tokens,
                "speculative decoding: draft tokens a decoding sequence proposes a step, "
                "looked up where its last tokens occurred earlier in its context, and verified "
                "in the same pass (0, the default: off; up to 16)",
                IntRange{.min = 0, .max = 16});
  parser.AddInt("speculate-ngram-max", &ngram_max,
                "the longest run of last tokens looked up for drafts (3)",
                IntRange{.min = 1, .max = 16});
  parser.AddInt("speculate-ngram-min", &ngram_min, "the shortest (1)",
                IntRange{.min = 1, .max = 16});
  parser.AddInt("speculate-max-seqs", &max_seqs,
                "propose drafts only while at most this many sequences run (16)",
                IntRange{.min = 1, .max = 4096});
}

absl::Status SpeculationFlags::Validate() const {
  if (ngram_min > ngram_max) {
    return absl::InvalidArgumentError(absl::StrCat("--speculate-ngram-min ", ngram_min,
                                                   " exceeds --speculate-ngram-max ", ngram_max));
  }
  return absl::OkStatus();
}

void SpeculationFlags::Apply(engine::GeneratorOptions& options) const {
  options.speculate_tokens = tokens;
  options.speculate_ngram_max = ngram_max;
  options.speculate_ngram_min = ngram_min;
  options.speculate_max_seqs = max_seqs;
}

}  // namespace ringserve::tools
