// End to end: a short `edgefm scenario` with the small real models of tests/support — the cloud
// with customization, the link, the edge with audits, upload, a drift-triggered customization
// job and the model hot swap, all as processes of the real program.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "common/json_io.h"
#include "harness/process.h"
#include "support/fixtures.h"

namespace edgefm {
namespace {
namespace fs = std::filesystem;

std::vector<json> read_jsonl(const fs::path& path) {
  std::vector<json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(json::parse(line));
  }
  return rows;
}

TEST(Scenario, OneCustomizationRoundOnAShortStream) {
  const auto& models = testing::small_models();
  const fs::path out = fs::temp_directory_path() / ("edgefm-e2e-scenario-" + std::to_string(::getpid()));
  fs::remove_all(out);
  const std::string command =
      std::string(EDGEFM_BIN) + " scenario --fm " + models.fm + " --out-dir " + out.string() +
      " --trace-dir " + EDGEFM_TRACE_DIR +
      " --split default --history 400 --samples 1500 --shift-at 200 --detection-samples 200"
      " --rate 50 --window-s 4 --audit 0.2 --upload-per-minute 6000 --upload-kbps 4000"
      " --job-min-new 60 --job-epochs 3 --device-budget-ms 1000 --no-study > " +
      (out.string() + ".log") + " 2>&1";
  fs::create_directories(out);
  ASSERT_EQ(std::system(command.c_str()), 0) << "see " << out << ".log";

  const json results = read_json_file(out / "results.json");
  // The contract's timeline rows.
  ASSERT_TRUE(results.at("timeline").is_array());
  ASSERT_GE(results["timeline"].size(), 4u);
  for (const auto& row : results["timeline"]) {
    for (const char* field : {"t_s", "edge_share", "accuracy", "uploads", "model_version"}) {
      EXPECT_TRUE(row.contains(field)) << field;
    }
  }
  // Detection: with audits a drift is declared (these tiny models disagree with their FM often
  // enough that it may come before the shift); without audits the run only uploads.
  ASSERT_EQ(results.at("detection").size(), 2u);
  const json& audited = results["detection"][0];
  EXPECT_EQ(audited.at("mode"), "audit");
  ASSERT_TRUE(audited.at("detected").get<bool>()) << audited.dump();
  EXPECT_EQ(audited.at("trigger"), "drift");
  EXPECT_TRUE(audited.at("samples_to_detection").is_number());
  EXPECT_EQ(results["detection"][1].at("mode"), "no audit");
  // Recovery is read over full windows against the FM on the same samples.
  const json& targets = results.at("targets");
  EXPECT_GE(targets.at("recovery_period").at("windows").get<size_t>(), 1u) << targets.dump();
  EXPECT_GT(targets.at("recovery_period").at("samples").get<size_t>(), 0u);
  EXPECT_TRUE(targets.at("fm_accuracy_final").is_number()) << targets.dump();
  EXPECT_TRUE(targets.at("recovered").is_boolean());
  // Two budgets, two architecture rows.
  ASSERT_EQ(results.at("architecture").size(), 2u);

  // The loop ran: a job after the drift, the new model swapped in, answered with it.
  const fs::path run = out / "runs" / "default";
  const std::vector<json> events = read_jsonl(run / "audit-events.jsonl");
  std::set<std::string> kinds;
  for (const auto& e : events) kinds.insert(e.value("event", ""));
  EXPECT_TRUE(kinds.count("drift"));
  EXPECT_TRUE(kinds.count("uploaded"));
  EXPECT_TRUE(kinds.count("job_submitted"));
  EXPECT_TRUE(kinds.count("job_done"));
  EXPECT_TRUE(kinds.count("model_swapped"));
  const std::vector<json> answers = read_jsonl(run / "audit.jsonl");
  ASSERT_EQ(answers.size(), 1500u);
  std::set<uint64_t> ids;
  std::set<std::string> versions;
  for (const auto& a : answers) {
    ids.insert(a.at("id").get<uint64_t>());
    versions.insert(a.at("model_version").get<std::string>());
  }
  EXPECT_EQ(ids.size(), 1500u);  // no sample dropped or answered twice across the swap
  EXPECT_TRUE(versions.count("1"));
  EXPECT_GE(versions.size(), 2u) << "no answer came from the customized model";
  EXPECT_TRUE(fs::exists(out / "results.md"));
  EXPECT_TRUE(fs::exists(out / "timeline.csv"));
  fs::remove_all(out);
  fs::remove(out.string() + ".log");
}

TEST(Scenario, AStoppedScenarioKeepsTheSplitsThatFinished) {
  const auto& models = testing::small_models();
  const fs::path out =
      fs::temp_directory_path() / ("edgefm-e2e-scenario-stopped-" + std::to_string(::getpid()));
  fs::remove_all(out);
  fs::create_directories(out);
  // Two splits, detection only (no jobs after the first model), short streams.
  harness::ChildProcess scenario(
      EDGEFM_BIN,
      {"scenario", "--fm", models.fm, "--out-dir", out.string(), "--trace-dir", EDGEFM_TRACE_DIR,
       "--split", "default", "--split", "even", "--full-loop-splits", "0", "--history", "300",
       "--samples", "400", "--shift-at", "200", "--detection-samples", "100", "--rate", "100",
       "--job-epochs", "2", "--device-budget-ms", "1000", "--no-study"},
      out.string() + ".log");
  // Once the second split has started, SIGTERM.
  auto second_started = [&] {
    return scenario.log_tail(1 << 20).find("[scenario] even:") != std::string::npos;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(400);
  while (!second_started() && scenario.running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(second_started()) << scenario.log_tail();
  const int status = scenario.stop(std::chrono::seconds(120));
  EXPECT_EQ(status, 1) << scenario.log_tail();
  EXPECT_NE(scenario.log_tail().find("after 1 of 2 splits"), std::string::npos)
      << scenario.log_tail();
  const json results = read_json_file(out / "results.json");
  EXPECT_TRUE(results.at("interrupted").get<bool>());
  ASSERT_EQ(results.at("splits").size(), 1u);
  EXPECT_TRUE(fs::exists(out / "results.md"));
  fs::remove_all(out);
  fs::remove(out.string() + ".log");
}

}  // namespace
}  // namespace edgefm
