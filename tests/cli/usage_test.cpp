// Usage errors: every numeric option of every subcommand refuses NaN and negatives when the
// command line is parsed (exit 2), and the usual mistakes of a new user get one line that
// names the option, through the real program.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/usage.h"
#include "common/json_io.h"
#include "support/fixtures.h"

namespace edgefm::cli {
namespace {
namespace fs = std::filesystem;

struct NumericOption {
  std::vector<std::string> command;  // e.g. {"fm", "train"}
  std::string name;                  // e.g. "--epochs"
  bool any_sign = false;             // documented as taking negatives too
};

void collect(CLI::App& app, std::vector<std::string> path, std::vector<NumericOption>& out) {
  if (!path.empty() || !app.get_name().empty()) {
    for (const CLI::Option* opt : app.get_options()) {
      const std::string type = opt->get_type_name();
      if (type.rfind("INT", 0) != 0 && type.rfind("UINT", 0) != 0 && type.rfind("FLOAT", 0) != 0) {
        continue;
      }
      out.push_back({path, "--" + opt->get_lnames().front(),
                     type.find("a finite number") != std::string::npos});
    }
  }
  for (CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name().empty()) continue;
    std::vector<std::string> sub_path = path;
    sub_path.push_back(sub->get_name());
    collect(*sub, sub_path, out);
  }
}

TEST(Usage, EveryNumericOptionRefusesNanAndNegativesAtParseTime) {
  CLI::App app{"edgefm", "edgefm"};
  add_commands(app);
  std::vector<NumericOption> options;
  collect(app, {}, options);
  ASSERT_GT(options.size(), 50u);
  size_t any_sign = 0;
  for (const auto& o : options) {
    for (const std::string value : {"nan", "-1", "inf", "abc"}) {
      if (value == "-1" && o.any_sign) continue;
      std::vector<std::string> args = o.command;
      args.insert(args.end(), {o.name, value});
      std::string shown;
      for (const auto& a : args) shown += a + " ";
      EXPECT_EQ(run_program(args), kUsageExitCode) << shown;
    }
    any_sign += o.any_sign;
  }
  // Negative numbers make sense for a few thresholds only.
  EXPECT_LE(any_sign, 3u);
}

TEST(Usage, NearestNameFindsTyposOnly) {
  EXPECT_EQ(nearest_name("--studnet", {"--student", "--server", "--rate"}), "--student");
  EXPECT_EQ(nearest_name("serv", {"serve", "edge", "eval"}), "serve");
  EXPECT_EQ(nearest_name("--xyz", {"--student", "--server"}), "");
}

// `edgefm <args>` as a user runs it: the exit status and what it printed on stderr.
struct Outcome {
  int status = -1;
  std::string message;
};
Outcome run_edgefm(const std::string& args) {
  const fs::path file = fs::temp_directory_path() / ("edgefm-usage-" + std::to_string(::getpid()));
  const int raw = std::system((std::string(EDGEFM_BIN) + " " + args + " > /dev/null 2> " +
                               file.string()).c_str());
  std::ifstream in(file);
  Outcome o{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1,
            std::string((std::istreambuf_iterator<char>(in)), {})};
  fs::remove(file);
  return o;
}

TEST(Usage, CommonMistakesGetOneLineAndExitTwo) {
  struct Case {
    std::string args;
    std::vector<std::string> words;
  };
  const std::vector<Case> cases = {
      {"edge --studnet x.pt", {"unknown option --studnet", "did you mean --student"}},
      {"serv", {"unknown command 'serv'", "did you mean serve"}},
      {"fm trian", {"did you mean train"}},
      {"fm train --lr nan", {"--lr", "expected a number > 0", "'nan'"}},
      {"fm train --width 0", {"--width", "> 0"}},
      {"fm train --dim 0", {"--dim", "> 0"}},
      {"fm train --epochs 1.5", {"--epochs", "whole number"}},
      {"customize --lr -1", {"--lr", "> 0"}},
      {"customize --epochs 0", {"--epochs", "> 0"}},
      {"customize --tau 0", {"--tau", "> 0"}},
      {"customize --train-limit -5", {"--train-limit", ">= 0"}},
      {"customize --score nosuch", {"--score", "nosuch"}},
      {"customize --strategy best", {"--strategy", "best"}},
      {"eval --l-app-ms -5", {"--l-app-ms", "> 0"}},
      {"eval --uplink-mbps 0", {"--uplink-mbps", "> 0"}},
      {"models --repetitions -1", {"--repetitions", "> 0"}},
      {"link --delay-ms abc", {"--delay-ms", "'abc'"}},
      {"serve --port 70000", {"--port", "[0, 65535]"}},
  };
  for (const auto& c : cases) {
    const Outcome o = run_edgefm(c.args);
    EXPECT_EQ(o.status, kUsageExitCode) << c.args << ": " << o.message;
    for (const auto& w : c.words) {
      EXPECT_NE(o.message.find(w), std::string::npos) << c.args << ": " << o.message;
    }
    // One line, short.
    EXPECT_EQ(o.message.find('\n'), o.message.size() - 1) << c.args << ": " << o.message;
    EXPECT_LT(o.message.size(), 200u) << c.args << ": " << o.message;
  }
  EXPECT_EQ(run_edgefm("--help").status, 0);
  EXPECT_EQ(run_edgefm("edge --help").status, 0);
}

// --config FILE: the file's keys are the options; the command line wins; a wrong key, value or
// file is a usage error naming the file and line.
TEST(Usage, ConfigFilesGiveOptionsAndTheCommandLineWins) {
  const fs::path dir = fs::temp_directory_path() / ("edgefm-config-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const std::string student = edgefm::testing::small_models().student;
  const std::string config = write("edge.toml", "policy = \"edge-only\"\nsamples = 20\nrate = 0\n"
                                                "quiet = true\njson = \"" + (dir / "edge.json").string() +
                                                "\"\n");
  Outcome o = run_edgefm("edge --student " + student + " --config " + config);
  ASSERT_EQ(o.status, 0) << o.message;
  json result = read_json_file(dir / "edge.json");
  EXPECT_EQ(result.at("policy"), "edge-only");
  EXPECT_EQ(result.at("samples"), 20);
  o = run_edgefm("edge --student " + student + " --config " + config + " --samples 10");
  ASSERT_EQ(o.status, 0) << o.message;
  EXPECT_EQ(read_json_file(dir / "edge.json").at("samples"), 10);

  const struct {
    std::string file, words;
  } bad[] = {
      {write("typo.toml", "rate = 0\nl-app = 3\n"),
       "typo.toml:2: 'l-app' is not an option of `edgefm edge`; did you mean 'l-app-ms'?"},
      {write("value.toml", "l-app-ms = -1\n"), "--l-app-ms"},
      {write("flag.toml", "quiet = \"yes\"\n"), "'quiet' is a flag: expected true or false"},
      {write("table.toml", "[edge]\nrate = 0\n"), "'edge' is not an option"},
      {write("broken.toml", "rate = = 0\n"), "broken.toml:1:"},
  };
  for (const auto& b : bad) {
    o = run_edgefm("edge --student " + student + " --config " + b.file);
    EXPECT_EQ(o.status, kUsageExitCode) << b.file << ": " << o.message;
    EXPECT_NE(o.message.find(b.words), std::string::npos) << o.message;
    EXPECT_EQ(o.message.find('\n'), o.message.size() - 1) << o.message;
  }
  o = run_edgefm("edge --student " + student + " --config " + (dir / "missing.toml").string());
  EXPECT_EQ(o.status, kUsageExitCode) << o.message;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace edgefm::cli
