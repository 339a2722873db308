// The public API (include/edgefm/edge.h) on the small test student: futures and callbacks,
// answers from the edge, from a real `edgefm serve` and as fallback once it is stopped, and
// its errors. Then the package: `cmake --install` into a scratch prefix, examples/edge_app
// configured with find_package(EdgeFM) against that prefix alone, built, and run.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <edgefm/edge.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness/process.h"
#include "support/live.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"

namespace {
namespace fs = std::filesystem;

edgefm::EdgeConfig edge_only_config() {
  edgefm::EdgeConfig config;
  config.student = edgefm::testing::small_models().student;
  config.policy = "edge-only";
  return config;
}

size_t sample_bytes(const edgefm::Edge& edge) {
  size_t n = 1;
  for (int64_t d : edge.input_shape()) n *= static_cast<size_t>(d);
  return n;
}

std::vector<uint8_t> gradient(size_t bytes, int phase) {
  std::vector<uint8_t> s(bytes);
  for (size_t i = 0; i < bytes; ++i) s[i] = static_cast<uint8_t>((i * 7 + static_cast<size_t>(phase) * 31) % 256);
  return s;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs a shell command with its output in `log`; its exit status.
int run(const std::string& command, const fs::path& log) {
  const int status = std::system((command + " > '" + log.string() + "' 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

TEST(Library, EdgeOnlyFuturesAndCallbacks) {
  edgefm::Edge edge(edge_only_config());
  const std::vector<int64_t> shape = edge.input_shape();
  ASSERT_EQ(shape.size(), 3u);
  for (int64_t d : shape) EXPECT_GT(d, 0);
  const std::vector<std::string> classes = edge.classes();
  ASSERT_GE(classes.size(), 2u);
  const std::set<std::string> known(classes.begin(), classes.end());

  std::vector<std::future<edgefm::EdgeAnswer>> futures;
  for (int i = 0; i < 5; ++i) futures.push_back(edge.submit(gradient(sample_bytes(edge), i)));
  for (uint64_t i = 0; i < futures.size(); ++i) {
    const edgefm::EdgeAnswer a = futures[i].get();
    EXPECT_EQ(a.id, i);
    EXPECT_TRUE(known.count(a.label)) << a.label;
    EXPECT_EQ(a.route, "edge");
    EXPECT_TRUE(a.fallback_reason.empty());
    EXPECT_GE(a.latency_ms, 0.0);
    EXPECT_EQ(a.model_version, edge.model_version());
  }

  // Callbacks: an edge answer is given on the submitting thread, before submit returns.
  std::vector<edgefm::EdgeAnswer> answers;
  for (int i = 0; i < 3; ++i) {
    edge.submit(std::vector<uint8_t>(sample_bytes(edge), uint8_t{0}),
                [&answers](const edgefm::EdgeAnswer& a) { answers.push_back(a); });
    EXPECT_EQ(answers.size(), static_cast<size_t>(i + 1));
  }
  edge.drain();
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers[0].id, 5u);
  // The same pixels, the same answer.
  EXPECT_EQ(answers[0].label, answers[2].label);
  EXPECT_FLOAT_EQ(answers[0].score, answers[2].score);
  // A callback that throws loses nothing else.
  edge.submit(std::vector<uint8_t>(sample_bytes(edge), uint8_t{9}),
              [](const edgefm::EdgeAnswer&) { throw std::runtime_error("the application's bug"); });

  const edgefm::EdgeStats stats = edge.stats();
  EXPECT_EQ(stats.submitted, 9);
  EXPECT_EQ(stats.answered, 9);
  EXPECT_EQ(stats.edge, 9);
  EXPECT_EQ(stats.cloud + stats.fallback + stats.budget, 0);
}

TEST(Library, Errors) {
  auto message_of = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "(no error)";
  };
  edgefm::Edge edge(edge_only_config());
  // A sample of the wrong size is refused and takes no id.
  const std::string wrong = message_of([&] { edge.submit(std::vector<uint8_t>(5)); });
  EXPECT_NE(wrong.find(std::to_string(sample_bytes(edge)) + " bytes"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("got 5"), std::string::npos) << wrong;
  EXPECT_EQ(edge.submit(std::vector<uint8_t>(sample_bytes(edge))).get().id, 0u);

  edgefm::EdgeConfig config = edge_only_config();
  config.policy = "edgefm";  // needs a cloud
  const std::string no_server = message_of([&] { edgefm::Edge e(config); });
  EXPECT_NE(no_server.find("needs a server"), std::string::npos) << no_server;
  config.policy = "sometimes";
  config.server = "http://127.0.0.1:1";
  const std::string policy = message_of([&] { edgefm::Edge e(config); });
  EXPECT_NE(policy.find("edge-only"), std::string::npos) << policy;
  config = edge_only_config();
  config.student = "/nonexistent/student.pt";
  const std::string missing = message_of([&] { edgefm::Edge e(config); });
  EXPECT_NE(missing.find("/nonexistent/student.pt"), std::string::npos) << missing;
  for (const std::string& m : {wrong, no_server, policy, missing}) {
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

TEST(Library, CloudAnswersThenFallback) {
  const auto& models = edgefm::testing::small_models();
  edgefm::testing::TempDir dir("api", "cloud");
  edgefm::harness::ChildProcess serve(EDGEFM_BIN,
                                   {"serve", "--fm", models.fm, "--port", "0", "--port-file",
                                    (dir.path / "serve.port").string()},
                                   (dir.path / "serve.log").string());
  const int port = edgefm::testing::wait_for_port(serve, dir.path / "serve.port");
  ASSERT_GT(port, 0);

  edgefm::EdgeConfig config;
  config.student = models.student;
  config.server = "http://127.0.0.1:" + std::to_string(port);
  config.policy = "cloud-only";
  config.cloud_timeout_ms = 2000;
  edgefm::Edge edge(config);
  const size_t bytes = sample_bytes(edge);

  std::mutex mutex;
  std::vector<edgefm::EdgeAnswer> answers;
  auto collect = [&](const edgefm::EdgeAnswer& a) {
    std::lock_guard<std::mutex> lock(mutex);
    answers.push_back(a);
  };
  for (int i = 0; i < 6; ++i) edge.submit(gradient(bytes, i), collect);
  edgefm::EdgeAnswer by_future = edge.submit(gradient(bytes, 0)).get();
  edge.drain();
  ASSERT_EQ(answers.size(), 6u);
  for (const auto& a : answers) {
    EXPECT_EQ(a.route, "cloud") << a.id << " " << a.fallback_reason;
    EXPECT_FALSE(a.label.empty());
  }
  EXPECT_EQ(by_future.route, "cloud");
  EXPECT_EQ(by_future.id, 6u);

  serve.stop();
  std::vector<std::future<edgefm::EdgeAnswer>> futures;
  for (int i = 0; i < 4; ++i) futures.push_back(edge.submit(gradient(bytes, i)));
  const std::vector<std::string> classes = edge.classes();
  for (auto& f : futures) {
    const edgefm::EdgeAnswer a = f.get();
    EXPECT_EQ(a.route, "fallback");
    EXPECT_FALSE(a.fallback_reason.empty());
    EXPECT_NE(std::find(classes.begin(), classes.end(), a.label), classes.end()) << a.label;
  }
  const edgefm::EdgeStats stats = edge.stats();
  EXPECT_EQ(stats.submitted, 11);
  EXPECT_EQ(stats.answered, 11);
  EXPECT_EQ(stats.cloud, 7);
  EXPECT_EQ(stats.fallback, 4);
}

// The package as an application sees it: only the install prefix, the example's own
// CMakeLists.txt and the system's packages.
TEST(Library, ExampleBuildsAgainstTheInstalledPackage) {
  const std::string student = edgefm::testing::small_models().student;
  edgefm::testing::TempDir dir("api", "package");
  const fs::path prefix = dir.path / "prefix";
  const fs::path build = dir.path / "edge_app";
  const std::string cmake = quoted(EDGEFM_CMAKE_COMMAND);
  const auto t0 = std::chrono::steady_clock::now();

  const fs::path install_log = dir.path / "install.log";
  ASSERT_EQ(run(cmake + " --install " + quoted(EDGEFM_BINARY_DIR) + " --prefix " + quoted(prefix.string()),
                install_log),
            0)
      << read_file(install_log);
  EXPECT_TRUE(fs::exists(prefix / "include" / "edgefm" / "edge.h"));
  bool config = false;
  for (const auto& entry : fs::recursive_directory_iterator(prefix)) {
    if (entry.path().filename() == "EdgeFMConfig.cmake") config = true;
    // Only the public header is installed, never the internal ones.
    if (entry.path().extension() == ".h") {
      EXPECT_EQ(entry.path().filename(), "edge.h") << entry.path();
    }
  }
  EXPECT_TRUE(config);

  const fs::path configure_log = dir.path / "configure.log";
  ASSERT_EQ(run(cmake + " -S " + quoted(std::string(EDGEFM_SOURCE_DIR) + "/examples/edge_app") + " -B " +
                    quoted(build.string()) + " -G " + quoted(EDGEFM_CMAKE_GENERATOR) +
                    " -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=" + quoted(EDGEFM_CXX_COMPILER) +
                    " -DCMAKE_PREFIX_PATH=" + quoted(prefix.string()),
                configure_log),
            0)
      << read_file(configure_log);
  const fs::path build_log = dir.path / "build.log";
  ASSERT_EQ(run(cmake + " --build " + quoted(build.string()), build_log), 0) << read_file(build_log);
  const auto t1 = std::chrono::steady_clock::now();
  std::printf("[library] install + configure + build of the example: %.1f s\n",
              std::chrono::duration<double>(t1 - t0).count());

  const fs::path out = dir.path / "edge_app.out";
  ASSERT_EQ(run(quoted((build / "edge_app").string()) + " " + quoted(student), out), 0) << read_file(out);
  const std::string text = read_file(out);
  std::set<std::string> classes;
  const std::regex class_line(R"(^class (.+)$)");
  const std::regex answer_line(
      R"(^answer (\d+) route=(\w+) score=(-?[0-9.]+) latency_ms=([0-9.]+) version=\S+ label=(.+)$)");
  std::set<uint64_t> ids;
  std::istringstream lines(text);
  std::string line;
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, m, class_line)) {
      classes.insert(m[1]);
    } else if (std::regex_match(line, m, answer_line)) {
      ids.insert(std::stoull(m[1]));
      EXPECT_TRUE(classes.count(m[5])) << line;
      EXPECT_EQ(m[2], "edge") << line;
    }
  }
  EXPECT_GE(classes.size(), 2u) << text;
  EXPECT_EQ(ids, (std::set<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7})) << text;
  EXPECT_NE(text.find("submitted 8 answered 8 edge 8 cloud 0 fallback 0"), std::string::npos) << text;

  // An error is one line on stderr and exit status 1.
  const fs::path bad = dir.path / "bad.out";
  EXPECT_EQ(run(quoted((build / "edge_app").string()) + " /nonexistent/student.pt", bad), 1);
  const std::string error = read_file(bad);
  EXPECT_EQ(error.rfind("edge_app: error: ", 0), 0u) << error;
  EXPECT_EQ(std::count(error.begin(), error.end(), '\n'), 1) << error;
}

}  // namespace
