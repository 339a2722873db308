// End to end: the real `edgefm` program as three processes (serve, link, edge) on 127.0.0.1
// with the small real models of tests/support, on a short stream; then a short
// `edgefm experiment` on one trace.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>

#include "common/json_io.h"
#include "harness/process.h"
#include "support/fixtures.h"
#include "support/live.h"

namespace edgefm {
namespace {
namespace fs = std::filesystem;

const std::string kTrace = std::string(EDGEFM_TRACE_DIR) + "/Verizon-LTE-short.up";

struct LiveSetup {
  fs::path dir;
  std::unique_ptr<harness::ChildProcess> serve, link;
  int link_port = 0;

  explicit LiveSetup(const std::string& name) : dir(testing::scratch_dir(name)) {
    const auto& models = testing::small_models();
    serve = std::make_unique<harness::ChildProcess>(
        EDGEFM_BIN,
        std::vector<std::string>{"serve", "--fm", models.fm, "--port", "0", "--port-file",
                                 (dir / "serve.port").string(), "--token", "e2e"},
        (dir / "serve.log").string());
    const int serve_port = testing::wait_for_port(*serve, dir / "serve.port");
    link = std::make_unique<harness::ChildProcess>(
        EDGEFM_BIN,
        std::vector<std::string>{"link", "--listen", "127.0.0.1:0", "--upstream",
                                 "127.0.0.1:" + std::to_string(serve_port), "--uplink-trace",
                                 kTrace, "--delay-ms", "20", "--port-file",
                                 (dir / "link.port").string()},
        (dir / "link.log").string());
    link_port = testing::wait_for_port(*link, dir / "link.port");
  }
  ~LiveSetup() {
    link.reset();
    serve.reset();
    fs::remove_all(dir);
  }

  // Runs `edgefm edge` to the end; returns its --json summary.
  json run_edge(const std::string& policy, int samples, const std::string& log) {
    harness::ChildProcess edge(
        EDGEFM_BIN,
        {"edge", "--student", testing::small_models().student, "--server",
         "http://127.0.0.1:" + std::to_string(link_port), "--token", "e2e", "--policy", policy,
         "--l-app-ms", "20", "--rate", "200", "--samples", std::to_string(samples), "--log",
         (dir / log).string(), "--json", (dir / (policy + ".json")).string(), "--quiet"},
        (dir / (policy + "-edge.log")).string());
    auto status = edge.wait_for(std::chrono::seconds(120));
    EXPECT_TRUE(status.has_value()) << "edge did not finish:\n" << edge.log_tail();
    EXPECT_EQ(status.value_or(-1), 0) << edge.log_tail();
    return read_json_file(dir / (policy + ".json"));
  }
};

TEST(EdgeLive, ServeLinkAndEdgeAnswerEverySample) {
  LiveSetup live("live");
  const int n = 300;
  json s = live.run_edge("edgefm", n, "edgefm.jsonl");
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(s.at("samples").get<int>(), n);
  const json& counts = s.at("counts");
  const int edge = counts.at("edge"), cloud = counts.at("cloud"), fallback = counts.at("fallback");
  EXPECT_EQ(edge + cloud + fallback, n);
  EXPECT_GT(cloud, 0);  // the budget leaves room for some cloud answers
  EXPECT_GT(s.at("bytes_up").get<int64_t>(), static_cast<int64_t>(cloud) * 784);
  EXPECT_GT(s.at("accuracy").get<double>(), 0.3);
  EXPECT_LE(s.at("accuracy").get<double>(), 1.0);
  EXPECT_NEAR(s.at("offload_ratio").get<double>(), static_cast<double>(cloud + fallback) / n, 1e-9);
  EXPECT_LE(s.at("latency_ms_p50").get<double>(), s.at("latency_ms_p95").get<double>());
  EXPECT_LE(s.at("latency_ms_p95").get<double>(), s.at("latency_ms_p99").get<double>());
  EXPECT_GE(s.at("runtime").at("threshold_searches").get<int>(), 1);

  // The log: one line per sample, each id once, provenance as counted.
  std::ifstream log(live.dir / "edgefm.jsonl");
  std::string line;
  std::set<uint64_t> ids;
  int lines = 0, cloud_lines = 0;
  while (std::getline(log, line)) {
    json a = json::parse(line);
    ++lines;
    ids.insert(a.at("id").get<uint64_t>());
    cloud_lines += a.at("route") == "cloud";
    EXPECT_TRUE(a.contains("threshold"));
    EXPECT_TRUE(a.contains("est_uplink_bps"));
    EXPECT_FALSE(a.at("truth").is_null());
  }
  EXPECT_EQ(lines, n);
  EXPECT_EQ(ids.size(), static_cast<size_t>(n));
  EXPECT_EQ(cloud_lines, cloud);
}

TEST(EdgeLive, TheAnswerLogIsAppendedToAcrossRestarts) {
  const fs::path dir = testing::scratch_dir("log-append");
  const fs::path log = dir / "answers.jsonl";
  const int n = 25;
  for (int run = 0; run < 2; ++run) {
    harness::ChildProcess edge(EDGEFM_BIN,
                            {"edge", "--student", testing::small_models().student, "--policy",
                             "edge-only", "--rate", "0", "--samples", std::to_string(n), "--log",
                             log.string(), "--quiet"},
                            (dir / ("edge-" + std::to_string(run) + ".log")).string());
    auto status = edge.wait_for(std::chrono::seconds(120));
    ASSERT_TRUE(status.has_value()) << "edge did not finish:\n" << edge.log_tail();
    ASSERT_EQ(*status, 0) << edge.log_tail();
  }
  // Both runs' lines: every id twice, the first run's before the second's.
  std::ifstream in(log);
  std::map<uint64_t, int> times;
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    ++times[json::parse(line).at("id").get<uint64_t>()];
  }
  EXPECT_EQ(lines, 2 * n);
  EXPECT_EQ(times.size(), static_cast<size_t>(n));
  for (const auto& [id, count] : times) EXPECT_EQ(count, 2) << "id " << id;
  fs::remove_all(dir);
}

TEST(EdgeLive, CloudOnlyThroughTheLinkAndLosingTheCloud) {
  LiveSetup live("cloud");
  json s = live.run_edge("cloud-only", 150, "cloud.jsonl");
  const json& counts = s.at("counts");
  EXPECT_EQ(counts.at("edge").get<int>(), 0);
  EXPECT_EQ(counts.at("cloud").get<int>() + counts.at("fallback").get<int>(), 150);
  EXPECT_GT(counts.at("cloud").get<int>(), 100);
  // Every cloud answer crossed the 2 x 20 ms link.
  EXPECT_GT(s.at("latency_ms_p50").get<double>(), 40.0);

  // The cloud service goes away: every sample is still answered, from the edge.
  live.serve->stop();
  json down = live.run_edge("cloud-only", 100, "down.jsonl");
  EXPECT_EQ(down.at("counts").at("fallback").get<int>(), 100);
  EXPECT_EQ(down.at("samples").get<int>(), 100);
}

TEST(EdgeLive, AMisconfiguredCloudIsSaidAndRequireCloudMakesItFatal) {
  LiveSetup live("misconfigured");
  const std::string server = "http://127.0.0.1:" + std::to_string(live.link_port);
  auto run = [&](const std::vector<std::string>& extra, const std::string& tag) {
    std::vector<std::string> args = {"edge", "--student", testing::small_models().student,
                                     "--policy", "cloud-only", "--rate", "0", "--samples", "30",
                                     "--json", (live.dir / (tag + ".json")).string(), "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    harness::ChildProcess edge(EDGEFM_BIN, args, (live.dir / (tag + ".log")).string());
    const auto status = edge.wait_for(std::chrono::seconds(120));
    std::ifstream in(live.dir / (tag + ".log"));
    return std::make_pair(status.value_or(-1), std::string((std::istreambuf_iterator<char>(in)), {}));
  };
  // A wrong token: said at start-up and at the end; every answer a fallback, counted by reason.
  auto [status, log] = run({"--server", server, "--token", "wrong"}, "token");
  EXPECT_EQ(status, 0) << log;
  EXPECT_NE(log.find("refuses the token (HTTP 401)"), std::string::npos) << log;
  EXPECT_NE(log.find("30 answers fell back to the edge (refused 30 (HTTP 401"), std::string::npos)
      << log;
  EXPECT_EQ(read_json_file(live.dir / "token.json").at("fallback_reasons").at("refused"), 30);
  // --require-cloud: the same is an error.
  std::tie(status, log) = run({"--server", server, "--token", "wrong", "--require-cloud"}, "token-required");
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("refuses the token"), std::string::npos) << log;
  // Nothing listening.
  std::tie(status, log) = run({"--server", "http://127.0.0.1:9", "--require-cloud"}, "unreachable");
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("is unreachable"), std::string::npos) << log;
  // A cloud that rejects every request (each is larger than its --max-request-mb): the
  // status and the server's reason are said, and --require-cloud makes it fatal.
  harness::ChildProcess strict(EDGEFM_BIN,
                            {"serve", "--fm", testing::small_models().fm, "--port", "0",
                             "--port-file", (live.dir / "strict.port").string(),
                             "--max-request-mb", "0.0001"},
                            (live.dir / "strict.log").string());
  const std::string strict_server =
      "http://127.0.0.1:" + std::to_string(testing::wait_for_port(strict, live.dir / "strict.port"));
  std::tie(status, log) = run({"--server", strict_server}, "rejected");
  EXPECT_EQ(status, 0) << log;
  // After 3 failures in a row the breaker answers the next ones at once ("down").
  EXPECT_NE(log.find("30 answers fell back to the edge (down "), std::string::npos) << log;
  EXPECT_NE(log.find("(HTTP 413: request body of"), std::string::npos) << log;
  const json reasons = read_json_file(live.dir / "rejected.json").at("fallback_reasons");
  EXPECT_GE(reasons.at("rejected").get<int>(), 3);
  EXPECT_EQ(reasons.at("rejected").get<int>() + reasons.at("down").get<int>(), 30);
  std::tie(status, log) = run({"--server", strict_server, "--require-cloud"}, "rejected-required");
  EXPECT_EQ(status, 1) << log;
  EXPECT_NE(log.find("HTTP 413"), std::string::npos) << log;
  // Not a URL: a usage error.
  std::tie(status, log) = run({"--server", "notaurl"}, "not-a-url");
  EXPECT_EQ(status, 2) << log;
  EXPECT_NE(log.find("expected a URL"), std::string::npos) << log;
}

TEST(EdgeLive, AStoppedExperimentKeepsTheRunsThatFinished) {
  const fs::path dir = testing::scratch_dir("experiment-stopped");
  const auto& models = testing::small_models();
  harness::ChildProcess experiment(
      EDGEFM_BIN,
      {"experiment", "--fm", models.fm, "--student", models.student, "--traces",
       "Verizon-LTE-short", "--trace-dir", EDGEFM_TRACE_DIR, "--policies", "edge-only,cloud-only",
       "--samples", "100", "--rate", "10", "--out-dir", dir.string()},
      (dir / "experiment.log").string());
  // Once the second run has started, SIGTERM.
  auto second_started = [&] {
    return experiment.log_tail(100000).find("run 2/2") != std::string::npos;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  while (!second_started() && experiment.running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(second_started()) << experiment.log_tail();
  const int status = experiment.stop(std::chrono::seconds(120));
  EXPECT_EQ(status, 1) << experiment.log_tail();
  EXPECT_NE(experiment.log_tail().find("after 1 of 2 runs"), std::string::npos)
      << experiment.log_tail();
  const json rows = read_json_file(dir / "results.json");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("policy"), "edge-only");
  const json setup = read_json_file(dir / "setup.json");
  EXPECT_TRUE(setup.at("interrupted").get<bool>());
  EXPECT_EQ(setup.at("runs_finished"), 1);
  EXPECT_TRUE(fs::exists(dir / "results.md"));
  fs::remove_all(dir);
}

TEST(EdgeLive, ShortExperimentWritesEveryResult) {
  const fs::path dir = testing::scratch_dir("experiment");
  const auto& models = testing::small_models();
  harness::ChildProcess experiment(
      EDGEFM_BIN,
      {"experiment", "--fm", models.fm, "--student", models.student, "--traces",
       "Verizon-LTE-short", "--trace-dir", EDGEFM_TRACE_DIR, "--samples", "120", "--rate", "200",
       "--out-dir", dir.string()},
      (dir / "experiment.log").string());
  auto status = experiment.wait_for(std::chrono::seconds(240));
  ASSERT_TRUE(status.has_value()) << experiment.log_tail();
  ASSERT_EQ(*status, 0) << experiment.log_tail();

  json rows = read_json_file(dir / "results.json");
  ASSERT_TRUE(rows.is_array());
  ASSERT_EQ(rows.size(), 4u);
  std::set<std::string> policies;
  for (const auto& row : rows) {
    EXPECT_EQ(row.at("trace"), "Verizon-LTE-short");
    policies.insert(row.at("policy").get<std::string>());
    for (const char* field : {"accuracy", "latency_ms_mean", "latency_ms_p50", "latency_ms_p95",
                              "latency_ms_p99", "slo_violation_rate", "offload_ratio", "bytes_up"}) {
      EXPECT_TRUE(row.contains(field)) << field;
    }
    EXPECT_EQ(row.at("edge").get<int>() + row.at("cloud").get<int>() +
                  row.at("fallback").get<int>(),
              120);
    if (row.at("policy") == "edge-only") {
      EXPECT_EQ(row.at("bytes_up").get<int64_t>(), 0);
      EXPECT_EQ(row.at("offload_ratio").get<double>(), 0.0);
    }
    if (row.at("policy") == "cloud-only") {
      EXPECT_EQ(row.at("offload_ratio").get<double>(), 1.0);
    }
  }
  EXPECT_EQ(policies, (std::set<std::string>{"edge-only", "cloud-only", "fixed", "edgefm"}));
  EXPECT_TRUE(fs::exists(dir / "results.csv"));
  EXPECT_TRUE(fs::exists(dir / "results.md"));
  EXPECT_TRUE(fs::exists(dir / "setup.json"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace edgefm
