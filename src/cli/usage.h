#pragma once
// Usage errors, caught when the command line is parsed: numbers that are not numbers, NaN,
// infinities, negatives and values out of range are refused with one line naming the option;
// a misspelt option or command gets a "did you mean". Usage errors exit with status 2.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/error.h"

namespace edgefm::cli {

inline constexpr int kUsageExitCode = 2;

// A usage error found after parsing (options that contradict each other): exit status 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

// Validators for numeric options. Each refuses what is not a finite number with
// "expected <what>, got '<value>'".
CLI::Validator positive_number();      // > 0
CLI::Validator non_negative_number();  // >= 0
CLI::Validator number_in(double low, double high);  // [low, high]
CLI::Validator any_number();           // finite, any sign

// Gives every numeric option of `app` and its subcommands the checks it lacks: integers for
// INT/UINT options, and >= 0 for options that have none of the validators above.
void check_numeric_options(CLI::App& app);

// One line for a parse error of `args` (argv without the program name): an unknown option or
// command with the nearest known name, else CLI11's message with the command it concerns.
std::string describe_parse_error(CLI::App& app, const std::vector<std::string>& args,
                                 const CLI::ParseError& error);

// The nearest of `candidates` to `word` by edit distance, if it is near enough to be a typo.
std::string nearest_name(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace edgefm::cli
