// End to end: a small `edgefm fleet` with the small real models of tests/support — one cloud
// service as a child process, four devices (runtimes and links) in the fleet's process.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "common/json_io.h"
#include "support/fixtures.h"

namespace edgefm {
namespace {
namespace fs = std::filesystem;

TEST(Fleet, FourDevicesAgainstOneCloudLoseNoAnswer) {
  const auto& models = testing::small_models();
  const fs::path out = fs::temp_directory_path() / ("edgefm-e2e-fleet-" + std::to_string(::getpid()));
  fs::remove_all(out);
  const std::string command = std::string(EDGEFM_BIN) + " fleet --fm " + models.fm + " --student " +
                              models.student + " --devices 4 --samples 40 --rate 20 --trace-dir " +
                              EDGEFM_TRACE_DIR + " --out-dir " + out.string() + " > " +
                              out.string() + ".log 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << "see " << out << ".log";

  const json results = read_json_file(out / "results.json");
  for (const char* field : {"devices", "lost_answers", "cloud_p99_ms", "cloud_requests_per_s",
                            "provenance", "rows"}) {
    EXPECT_TRUE(results.contains(field)) << field;
  }
  EXPECT_EQ(results.at("devices").get<size_t>(), 4u);
  EXPECT_EQ(results.at("lost_answers").get<size_t>(), 0u);
  EXPECT_TRUE(results.at("provenance").contains("command"));
  ASSERT_EQ(results.at("rows").size(), 4u);
  std::set<std::string> names, traces;
  for (const auto& row : results["rows"]) {
    names.insert(row.at("device").get<std::string>());
    traces.insert(row.at("trace").get<std::string>());
    EXPECT_EQ(row.at("samples").get<size_t>(), 40u) << row.dump();
    EXPECT_EQ(row.at("answers").get<size_t>(), 40u) << row.dump();
    EXPECT_EQ(row.at("lost").get<size_t>(), 0u);
    for (const char* field : {"accuracy", "offload_ratio", "latency_ms_p50", "latency_ms_p99",
                              "slo_violation_rate"}) {
      EXPECT_TRUE(row.at(field).is_number()) << field;
    }
    EXPECT_GT(row.at("accuracy").get<double>(), 0.3) << row.dump();
    // Each device keeps its answers in its own state folder.
    std::ifstream log(out / "devices" / row.at("device").get<std::string>() / "answers.jsonl");
    size_t lines = 0;
    for (std::string line; std::getline(log, line);) lines += !line.empty();
    EXPECT_EQ(lines, 40u);
  }
  EXPECT_EQ(names.size(), 4u);
  EXPECT_GE(traces.size(), 2u);  // devices spread over the bundled traces
  EXPECT_GE(results.at("cloud_requests_per_s").get<double>(), 0.0);
  EXPECT_TRUE(fs::exists(out / "results.csv"));
  EXPECT_TRUE(fs::exists(out / "results.md"));
  fs::remove_all(out);
  fs::remove(out.string() + ".log");
}

TEST(Fleet, JobsReportTheirQueueingDelay) {
  const auto& models = testing::small_models();
  const fs::path out =
      fs::temp_directory_path() / ("edgefm-e2e-fleet-jobs-" + std::to_string(::getpid()));
  fs::remove_all(out);
  const std::string command = std::string(EDGEFM_BIN) + " fleet --fm " + models.fm + " --student " +
                              models.student + " --devices 3 --samples 30 --rate 20 --jobs 2" +
                              " --trace-dir " + EDGEFM_TRACE_DIR + " --out-dir " + out.string() +
                              " > " + out.string() + ".log 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << "see " << out << ".log";
  const json results = read_json_file(out / "results.json");
  EXPECT_EQ(results.at("lost_answers").get<size_t>(), 0u);
  EXPECT_EQ(results.at("jobs").get<size_t>(), 2u);
  EXPECT_EQ(results.at("jobs_done").get<size_t>(), 2u) << results.dump();
  const json& rows = results.at("rows");
  ASSERT_EQ(rows.size(), 3u);
  for (size_t d = 0; d < 2; ++d) {
    EXPECT_EQ(rows[d].at("job_state"), "done") << rows[d].dump();
    EXPECT_GE(rows[d].at("job_wait_ms").get<double>(), 0.0);
    EXPECT_GT(rows[d].at("job_run_ms").get<double>(), 0.0);
  }
  EXPECT_FALSE(rows[2].contains("job_state"));  // the third device submitted none
  EXPECT_GE(results.at("job_wait_ms_max").get<double>(), results.at("job_wait_ms_p50").get<double>());
  fs::remove_all(out);
  fs::remove(out.string() + ".log");
}

TEST(Fleet, RefusesZeroDevicesAsAUsageError) {
  const std::string command =
      std::string(EDGEFM_BIN) + " fleet --devices 0 > /dev/null 2>&1";
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

}  // namespace
}  // namespace edgefm
