// The load benchmark run briefly against the real `edgefm serve` with the small test FM:
// its JSON has every field, and a lightly loaded service answers everything. Correctness of
// the output only; the timings are never checked.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/json_io.h"
#include "support/fixtures.h"

namespace edgefm {
namespace {
namespace fs = std::filesystem;

void expect_step_fields(const json& step, const std::string& where) {
  for (const char* field : {"mode", "concurrency", "window_s", "requests", "errors",
                            "errors_by_kind", "throughput_infer_per_s", "latency_ms_p50",
                            "latency_ms_p90", "latency_ms_p95", "latency_ms_p99",
                            "latency_ms_max"}) {
    EXPECT_TRUE(step.contains(field)) << where << " lacks " << field << ": " << step.dump();
  }
  EXPECT_EQ(step.value("errors", -1), 0) << where << ": " << step.dump();
  EXPECT_GT(step.value("requests", 0), 0) << where << ": " << step.dump();
  EXPECT_LE(step.value("latency_ms_p50", 0.0), step.value("latency_ms_p90", 0.0)) << where;
  EXPECT_LE(step.value("latency_ms_p90", 0.0), step.value("latency_ms_p99", 0.0)) << where;
}

TEST(LoadBench, ShortRunWritesEveryFieldAndNoErrors) {
#ifndef EDGEFM_LOAD_BENCH_BIN
  GTEST_SKIP() << "built without the benchmark programs";
#else
  const fs::path out = fs::temp_directory_path() / ("edgefm-load-bench-" + std::to_string(::getpid()));
  fs::remove_all(out);
  const std::string command =
      std::string(EDGEFM_LOAD_BENCH_BIN) + " --fm " + testing::small_models().fm +
      " --edgefm " + EDGEFM_BIN + " --token t --concurrency 1,4 --rate 20 --arrivals constant"
      " --max-in-flight 4 --warmup-s 0.2 --duration-s 1 --overhead-delays-us 2000"
      " --slow-clients 20 --slow-duration-s 1 --probe-interval-ms 100 --out-dir " + out.string() +
      " > " + (out.string() + ".log") + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const json r = read_json_file(out / "load.json");
  EXPECT_EQ(r.at("benchmark"), "load_bench");
  for (const char* field : {"command", "machine", "server", "input_shape", "duration_s"}) {
    EXPECT_TRUE(r.contains(field)) << field;
  }
  EXPECT_TRUE(r.at("machine").contains("cpu"));
  EXPECT_TRUE(r.at("machine").contains("date"));
  EXPECT_EQ(r.at("errors"), 0);

  const json& sweep = r.at("concurrency_sweep");
  ASSERT_EQ(sweep.size(), 2u);
  EXPECT_EQ(sweep[0].at("concurrency"), 1);
  EXPECT_EQ(sweep[1].at("concurrency"), 4);
  for (const auto& step : sweep) expect_step_fields(step, "sweep");

  ASSERT_EQ(r.at("request_rate").size(), 1u);
  expect_step_fields(r.at("request_rate")[0], "rate");
  EXPECT_EQ(r.at("request_rate")[0].at("rate"), 20.0);
  EXPECT_TRUE(r.at("request_rate")[0].contains("late_sends"));

  const json& batching = r.at("batching_overhead");
  ASSERT_EQ(batching.at("steps").size(), 2u);  // max batch 1, then the 2000 us delay
  for (const auto& step : batching.at("steps")) expect_step_fields(step, "batching");
  ASSERT_EQ(batching.at("added").size(), 1u);
  EXPECT_EQ(batching.at("added")[0].at("max_queue_delay_us"), 2000);
  EXPECT_TRUE(batching.at("added")[0].contains("p50_added_ms"));

  const json& slow = r.at("slow_clients");
  EXPECT_EQ(slow.at("connections_requested"), 20);
  EXPECT_EQ(slow.at("connections_opened"), 20);
  EXPECT_TRUE(slow.contains("all_within_target"));
  expect_step_fields(slow.at("health"), "slow health");
  expect_step_fields(slow.at("infer"), "slow infer");

  for (const char* csv : {"sweep.csv", "rate.csv", "batching.csv", "slow.csv"}) {
    EXPECT_TRUE(fs::exists(out / csv)) << csv;
  }
  fs::remove_all(out);
  fs::remove(out.string() + ".log");
#endif
}

}  // namespace
}  // namespace edgefm
