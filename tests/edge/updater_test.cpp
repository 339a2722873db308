// The model updater against a real customization service (in process, behind a CloudServer)
// whose fake job runner publishes the fixture student, garbage, or nothing: installs, no-news,
// rejected artifacts (unloadable, tampered, incompatible, non-finite weights), a dead
// service, and hot swaps under running streams with every sample answered exactly once.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cloud/customization.h"
#include "cloud/linear_model.h"
#include "customize/distill.h"
#include "edge/runtime.h"
#include "edge/updater.h"
#include "models/student.h"
#include "support/fixtures.h"

namespace edgefm::edge {
namespace {

namespace fs = std::filesystem;

const char* kToken = "s3cret";
const char* kDevice = "cam";

fs::path fresh_dir(const std::string& name) {
  static std::atomic<int> counter{0};
  fs::path dir = fs::temp_directory_path() / ("edgefm-updater-" + name + "-" +
                                              std::to_string(::getpid()) + "-" +
                                              std::to_string(counter++));
  return dir;
}

// A fresh folder, removed with the object.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fresh_dir(name)) {}
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// A student whose training diverged (learning rate +inf: every weight NaN or infinite after
// one step), written by models::save_student with the fixture student's pool and metadata
// (calibration included), so that only its weights are wrong. Made once per test program.
const fs::path& diverged_student() {
  static const fs::path path = [] {
    const models::Student good = models::load_student(edgefm::testing::small_models().student);
    customize::DistillSet set;
    set.spec = good.encoder->spec();
    const size_t n = 8;
    const auto numel = static_cast<size_t>(set.spec.shape.numel());
    const auto d = static_cast<size_t>(good.pool.dim());
    set.images.assign(n * numel, 0.5f);
    for (size_t i = 0; i < n; ++i) {
      const size_t label = i % good.pool.size();
      set.pseudo_labels.push_back(static_cast<int>(label));
      set.fm_embeddings.insert(set.fm_embeddings.end(), good.pool.vector(label),
                               good.pool.vector(label) + d);
    }
    customize::DistillParams params = customize::distill_default_params();
    params.arch = good.encoder->arch();
    params.epochs = 1;
    params.batch_size = static_cast<int>(n);
    params.augment = false;
    params.learning_rate = std::numeric_limits<double>::infinity();
    const customize::DistillResult diverged = customize::distill(set, good.pool, params);
    const fs::path file = fresh_dir("diverged") / "student.pt";
    models::save_student(file, *diverged.student, good.pool, good.meta);
    return file;
  }();
  return path;
}

enum class Publish { student, garbage, diverged };

// A customization service whose runner publishes the fixture student, garbage bytes, or the
// diverged student.
struct Service {
  fs::path root = fresh_dir("service");
  std::atomic<Publish> publish{Publish::student};
  models::FoundationModel fm;
  std::unique_ptr<cloud::CustomizationService> service;
  std::unique_ptr<cloud::CloudServer> server;

  std::string artifact_key;  // non-empty: artifacts signed, and the client checks them

  explicit Service(std::string key = "") : artifact_key(std::move(key)) {
    cloud::LinearModelOptions m = cloud::linear_model_default_options();
    m.embedding_dim = 8;
    fm = cloud::make_linear_foundation_model(m, {"a", "b", "c"});
    cloud::CustomizationOptions options = cloud::customization_default_options();
    options.root = root;
    options.sample_shape = {1, 28, 28};
    options.artifact_key = artifact_key;
    service = std::make_unique<cloud::CustomizationService>(
        options, [this](const cloud::CustomizationJob& job, const cloud::JobProgress&) -> json {
          if (publish.load() == Publish::student) {
            fs::copy_file(edgefm::testing::small_models().student, job.output,
                          fs::copy_options::overwrite_existing);
          } else if (publish.load() == Publish::diverged) {
            fs::copy_file(diverged_student(), job.output, fs::copy_options::overwrite_existing);
          } else {
            std::ofstream out(job.output, std::ios::binary);
            out << "not a student artifact, version " << job.version;
          }
          return {{"arch", "tiny-cnn"}};
        });
    const std::vector<uint8_t> sample(784, 7);
    service->add_samples(kDevice, sample.data(), 1);
    cloud::ServerOptions s = cloud::server_default_options();
    s.token = kToken;
    s.threads = 8;
    s.keep_alive_timeout_s = 1;
    server = std::make_unique<cloud::CloudServer>(
        fm, s, std::vector<cloud::ServerExtension>{service->extension()});
  }
  ~Service() {
    server->stop();
    service->stop();
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }

  // Runs one job to the end; returns the version it published.
  int publish_version() {
    const json job = service->submit_job(kDevice, json::object());
    EXPECT_TRUE(service->wait_idle(60));
    const json record = service->job(job["id"].get<std::string>());
    EXPECT_EQ(record["state"], "done") << record.dump();
    return record["version"].get<int>();
  }
  fs::path artifact(int version) const {
    return root / kDevice / "artifacts" / ("v" + std::to_string(version) + ".pt");
  }

  cloud::ClientOptions client_options() const {
    cloud::ClientOptions o = cloud::client_default_options();
    o.url = server->url();
    o.token = kToken;
    o.read_timeout_s = 20;
    o.artifact_key = artifact_key;
    return o;
  }
};

// What the updater handed over and said.
struct Recorder {
  std::mutex mutex;
  std::vector<std::pair<std::string, json>> installed;  // model version, metadata
  std::vector<std::string> lines;

  ModelUpdater::Install install() {
    return [this](EdgeModel model, const json& metadata) {
      std::lock_guard lock(mutex);
      installed.emplace_back(model.version, metadata);
    };
  }
  ModelUpdater::Log log() {
    return [this](const std::string& line) {
      std::lock_guard lock(mutex);
      lines.push_back(line);
    };
  }
  size_t line_count() {
    std::lock_guard lock(mutex);
    return lines.size();
  }
};

UpdaterOptions updater_options(const cloud::ClientOptions& client, const fs::path& dir) {
  UpdaterOptions o = updater_default_options();
  o.client = client;
  o.device = kDevice;
  o.dir = dir;
  o.poll_s = 0.02;
  return o;
}

// An updater of `service` (from version 0) that swaps each installed model into `runtime`
// and then calls `after`.
std::unique_ptr<ModelUpdater> swapping_updater(const Service& service, const fs::path& dir,
                                               const models::ImageShape& shape,
                                               EdgeRuntime& runtime, Recorder& recorder,
                                               std::function<void()> after) {
  UpdaterOptions options = updater_options(service.client_options(), dir);
  options.expected_input = shape;
  return std::make_unique<ModelUpdater>(
      options, 0,
      [&runtime, after](EdgeModel model, const json&) {
        runtime.swap_model(std::move(model));
        after();
      },
      recorder.log());
}

TEST(Updater, NothingPublishedYetIsNone) {
  Service service;
  Recorder recorder;
  TempDir dir("dl");
  ModelUpdater updater(updater_options(service.client_options(), dir.path), 0,
                       recorder.install(), recorder.log());
  const UpdateOutcome outcome = updater.check_once();
  EXPECT_EQ(outcome.status, UpdateStatus::none) << outcome.message;
  EXPECT_TRUE(recorder.installed.empty());
  EXPECT_EQ(updater.current_version(), 0);
}

TEST(Updater, InstallsANewVersionOnce) {
  Service service;
  Recorder recorder;
  TempDir download("dl");
  const fs::path dir = download.path;
  ModelUpdater updater(updater_options(service.client_options(), dir), 0, recorder.install(),
                       recorder.log());
  ASSERT_EQ(service.publish_version(), 1);
  const UpdateOutcome outcome = updater.check_once();
  ASSERT_EQ(outcome.status, UpdateStatus::installed) << outcome.message;
  EXPECT_EQ(outcome.version, 1);
  EXPECT_EQ(updater.current_version(), 1);
  ASSERT_EQ(recorder.installed.size(), 1u);
  EXPECT_EQ(recorder.installed[0].first, "1");
  EXPECT_EQ(recorder.installed[0].second["version"], 1);
  EXPECT_EQ(recorder.installed[0].second["device"], kDevice);
  EXPECT_TRUE(fs::exists(dir / "v1.pt"));
  ASSERT_EQ(recorder.lines.size(), 1u);
  EXPECT_NE(recorder.lines[0].find("model v1 installed"), std::string::npos) << recorder.lines[0];

  // Nothing newer: no second install.
  EXPECT_EQ(updater.check_once().status, UpdateStatus::none);
  EXPECT_EQ(recorder.installed.size(), 1u);

  // An updater that already runs v1 does not install it again either.
  Recorder other;
  TempDir other_dir("dl");
  ModelUpdater current(updater_options(service.client_options(), other_dir.path), 1,
                       other.install(), other.log());
  EXPECT_EQ(current.check_once().status, UpdateStatus::none);
  EXPECT_TRUE(other.installed.empty());
}

TEST(Updater, AnArtifactThatDoesNotLoadIsRejectedOnceAndTheOldModelKept) {
  Service service;
  service.publish = Publish::garbage;
  Recorder recorder;
  TempDir download("dl");
  const fs::path dir = download.path;
  ModelUpdater updater(updater_options(service.client_options(), dir), 0, recorder.install(),
                       recorder.log());
  ASSERT_EQ(service.publish_version(), 1);
  UpdateOutcome outcome = updater.check_once();
  ASSERT_EQ(outcome.status, UpdateStatus::rejected) << outcome.message;
  EXPECT_EQ(outcome.version, 1);
  EXPECT_NE(outcome.message.find("model v1 rejected: "), std::string::npos) << outcome.message;
  EXPECT_NE(outcome.message.find("; keeping the initial model"), std::string::npos)
      << outcome.message;
  EXPECT_TRUE(recorder.installed.empty());
  EXPECT_EQ(updater.current_version(), 0);
  EXPECT_EQ(updater.rejected_version(), 1);
  EXPECT_FALSE(fs::exists(dir / "v1.pt"));  // the rejected download is not kept
  ASSERT_EQ(recorder.line_count(), 1u);
  EXPECT_EQ(recorder.lines[0], outcome.message);

  // The next polls do not try v1 again: no download, no new log line.
  for (int i = 0; i < 3; ++i) {
    outcome = updater.check_once();
    EXPECT_EQ(outcome.status, UpdateStatus::none) << outcome.message;
  }
  EXPECT_EQ(recorder.line_count(), 1u);
  EXPECT_FALSE(fs::exists(dir / "v1.pt"));

  // A newer, good version is installed.
  service.publish = Publish::student;
  ASSERT_EQ(service.publish_version(), 2);
  outcome = updater.check_once();
  ASSERT_EQ(outcome.status, UpdateStatus::installed) << outcome.message;
  EXPECT_EQ(outcome.version, 2);
  ASSERT_EQ(recorder.installed.size(), 1u);
  EXPECT_EQ(recorder.installed[0].first, "2");

  // Later garbage is refused while v2 keeps serving.
  service.publish = Publish::garbage;
  ASSERT_EQ(service.publish_version(), 3);
  outcome = updater.check_once();
  ASSERT_EQ(outcome.status, UpdateStatus::rejected) << outcome.message;
  EXPECT_NE(outcome.message.find("model v3 rejected: "), std::string::npos);
  EXPECT_NE(outcome.message.find("; keeping v2"), std::string::npos) << outcome.message;
  EXPECT_EQ(updater.current_version(), 2);
  EXPECT_TRUE(fs::exists(dir / "v2.pt"));
}

TEST(Updater, AnArtifactTamperedWithAfterPublishingFailsItsChecksum) {
  Service service;
  Recorder recorder;
  TempDir download("dl");
  const fs::path dir = download.path;
  ModelUpdater updater(updater_options(service.client_options(), dir), 0, recorder.install(),
                       recorder.log());
  ASSERT_EQ(service.publish_version(), 1);
  {
    // Same length, one byte flipped in the middle.
    std::fstream file(service.artifact(1), std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(fs::file_size(service.artifact(1)) / 2));
    char byte = 0;
    file.read(&byte, 1);
    file.seekp(static_cast<std::streamoff>(fs::file_size(service.artifact(1)) / 2));
    byte = static_cast<char>(byte ^ 0x5a);
    file.write(&byte, 1);
  }
  const UpdateOutcome outcome = updater.check_once();
  ASSERT_EQ(outcome.status, UpdateStatus::rejected) << outcome.message;
  EXPECT_NE(outcome.message.find("checksum"), std::string::npos) << outcome.message;
  EXPECT_TRUE(recorder.installed.empty());
  EXPECT_EQ(updater.current_version(), 0);
  EXPECT_FALSE(fs::exists(dir / "v1.pt"));
}

TEST(Updater, AnIncompatibleModelOrARefusedInstallIsRejected) {
  Service service;
  ASSERT_EQ(service.publish_version(), 1);
  Recorder recorder;
  TempDir dir("dl");
  UpdaterOptions options = updater_options(service.client_options(), dir.path);
  options.expected_input = models::ImageShape{3, 32, 32};
  ModelUpdater wrong_shape(options, 0, recorder.install(), recorder.log());
  UpdateOutcome outcome = wrong_shape.check_once();
  ASSERT_EQ(outcome.status, UpdateStatus::rejected) << outcome.message;
  EXPECT_NE(outcome.message.find("incompatible: input shape 1x28x28, expected 3x32x32"),
            std::string::npos)
      << outcome.message;

  options = updater_options(service.client_options(), dir.path);
  options.expected_dim = 3;
  ModelUpdater wrong_dim(options, 0, recorder.install(), recorder.log());
  outcome = wrong_dim.check_once();
  ASSERT_EQ(outcome.status, UpdateStatus::rejected) << outcome.message;
  EXPECT_NE(outcome.message.find("embedding dimension"), std::string::npos) << outcome.message;
  EXPECT_TRUE(recorder.installed.empty());

  ModelUpdater refused(
      updater_options(service.client_options(), dir.path), 0,
      [](EdgeModel, const json&) { throw Error("edge model: expected a calibration profile"); },
      recorder.log());
  outcome = refused.check_once();
  ASSERT_EQ(outcome.status, UpdateStatus::rejected) << outcome.message;
  EXPECT_NE(outcome.message.find("install failed"), std::string::npos) << outcome.message;
  EXPECT_EQ(refused.current_version(), 0);
}

TEST(Updater, AnArtifactWithNonFiniteWeightsIsRefusedAndTheOldModelKeepsServing) {
  // The artifact itself is well-formed: it loads, fits and carries a calibration profile.
  const models::Student diverged = models::load_student(diverged_student());
  const std::string why = models::unsound_reason(*diverged.encoder, diverged.pool.dim());
  ASSERT_NE(why.find("non-finite"), std::string::npos) << why;
  // The same file given at start-up is refused too.
  try {
    load_edge_model(diverged_student().string());
    ADD_FAILURE() << "a student with non-finite weights loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is unsound and must not serve: parameter '"), std::string::npos)
        << e.what();
  }
  const models::Student good = models::load_student(edgefm::testing::small_models().student);
  EXPECT_EQ(models::unsound_reason(*good.encoder, good.pool.dim()), "");
  EXPECT_NE(models::unsound_reason(*good.encoder, good.pool.dim() + 1).find("embedding dimension"),
            std::string::npos);

  Service service("artifact signing key");
  EdgeModel initial = load_edge_model(edgefm::testing::small_models().student);
  initial.version = "0";
  RuntimeOptions runtime_options = runtime_default_options();
  runtime_options.policy = Policy::edge_only;
  std::vector<Answer> answers;
  EdgeRuntime runtime(std::move(initial), runtime_options,
                      [&](const Answer& a) { answers.push_back(a); });
  int installs = 0;
  Recorder recorder;
  TempDir dir("dl");
  auto updater_owner = swapping_updater(service, dir.path, runtime.model()->encoder->input_shape(),
                                        runtime, recorder, [&] { ++installs; });
  ModelUpdater& updater = *updater_owner;

  // Signed and checksummed by the service: only the weights are wrong.
  service.publish = Publish::diverged;
  ASSERT_EQ(service.publish_version(), 1);
  const UpdateOutcome outcome = updater.check_once();
  std::printf("[diverged artifact] %s\n", outcome.message.c_str());
  ASSERT_EQ(outcome.status, UpdateStatus::rejected) << outcome.message;
  EXPECT_NE(outcome.message.find("model v1 rejected: "), std::string::npos) << outcome.message;
  EXPECT_NE(outcome.message.find("is unsound and must not serve: parameter '"), std::string::npos)
      << outcome.message;
  EXPECT_NE(outcome.message.find("; keeping the initial model"), std::string::npos)
      << outcome.message;
  EXPECT_EQ(outcome.message.find('\n'), std::string::npos) << "one line: " << outcome.message;
  EXPECT_EQ(installs, 0);
  EXPECT_EQ(updater.current_version(), 0);
  EXPECT_EQ(runtime.model()->version, "0");

  // The old model keeps answering, with finite scores.
  const models::ImageShape shape = runtime.model()->encoder->input_shape();
  for (uint64_t id = 0; id < 20; ++id) {
    Sample sample;
    sample.id = id;
    sample.pixels.assign(static_cast<size_t>(shape.numel()), static_cast<uint8_t>(id * 11));
    sample.arrival = Clock::now();
    runtime.process(std::move(sample));
  }
  runtime.drain();
  ASSERT_EQ(answers.size(), 20u);
  for (const auto& a : answers) {
    EXPECT_EQ(a.model_version, "0");
    EXPECT_TRUE(std::isfinite(a.score)) << "sample " << a.id;
  }
}

// A 127.0.0.1 port nothing listens on: bound, read back, closed.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

TEST(Updater, ADeadServiceIsAnOutcomeNeverAnException) {
  cloud::ClientOptions client = cloud::client_default_options();
  client.url = "http://127.0.0.1:" + std::to_string(closed_port());
  client.connect_timeout_s = 0.5;
  client.max_retries = 0;
  Recorder recorder;
  TempDir dir("dl");
  ModelUpdater updater(updater_options(client, dir.path), 2, recorder.install(),
                       recorder.log());
  UpdateOutcome outcome;
  EXPECT_NO_THROW(outcome = updater.check_once());
  EXPECT_EQ(outcome.status, UpdateStatus::unreachable);
  EXPECT_NE(outcome.message.find("unreachable"), std::string::npos) << outcome.message;
  EXPECT_EQ(updater.current_version(), 2);

  // The polling thread keeps going and logs the dead service once, not at every poll.
  updater.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  updater.stop();
  updater.stop();  // idempotent
  EXPECT_EQ(updater.last_outcome().status, UpdateStatus::unreachable);
  ASSERT_EQ(recorder.line_count(), 1u);
  EXPECT_NE(recorder.lines[0].find("keeping v2"), std::string::npos) << recorder.lines[0];
  EXPECT_TRUE(recorder.installed.empty());
}

TEST(Updater, HotSwapUnderARunningStreamDropsAndRepeatsNothing) {
  constexpr uint64_t kSamples = 2000;
  constexpr uint64_t kPublishAt = 300;  // the job is submitted before this sample
  constexpr uint64_t kSwappedBy = 1500; // the stream waits here for the swap if need be
  Service service;

  EdgeModel initial = load_edge_model(edgefm::testing::small_models().student);
  initial.version = "0";
  const models::ImageShape shape = initial.encoder->input_shape();
  RuntimeOptions runtime_options = runtime_default_options();
  runtime_options.policy = Policy::edge_only;

  std::mutex mutex;
  std::map<uint64_t, std::string> version_of;  // sample id -> model version of its answer
  int duplicates = 0;
  EdgeRuntime runtime(std::move(initial), runtime_options, [&](const Answer& a) {
    std::lock_guard lock(mutex);
    if (!version_of.emplace(a.id, a.model_version).second) ++duplicates;
  });

  std::atomic<int> installs{0};
  Recorder recorder;
  TempDir dir("dl");
  auto updater_owner = swapping_updater(service, dir.path, shape, runtime, recorder,
                                        [&] { ++installs; });
  ModelUpdater& updater = *updater_owner;
  updater.start();

  std::thread publisher;
  std::vector<uint8_t> pixels(static_cast<size_t>(shape.numel()));
  uint32_t state = 12345;
  for (uint64_t id = 0; id < kSamples; ++id) {
    if (id == kPublishAt) {
      publisher = std::thread([&] { service.publish_version(); });
    }
    if (id == kSwappedBy) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (updater.current_version() < 1 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      EXPECT_EQ(updater.current_version(), 1) << "no swap within 30 s";
    }
    for (auto& p : pixels) {
      state = state * 1664525u + 1013904223u;
      p = static_cast<uint8_t>(state >> 24);
    }
    Sample sample;
    sample.id = id;
    sample.pixels = pixels;
    sample.arrival = Clock::now();
    runtime.process(std::move(sample));
  }
  runtime.drain();
  updater.stop();
  publisher.join();

  EXPECT_EQ(installs.load(), 1);
  std::lock_guard lock(mutex);
  EXPECT_EQ(duplicates, 0);
  ASSERT_EQ(version_of.size(), kSamples);  // ids 0..kSamples-1, each once
  EXPECT_EQ(version_of.begin()->first, 0u);
  EXPECT_EQ(version_of.rbegin()->first, kSamples - 1);
  // Answers switch from v0 to v1 once, at the swap, and stay there.
  uint64_t first_new = kSamples;
  for (const auto& [id, version] : version_of) {
    if (version == "1") {
      first_new = std::min(first_new, id);
    } else {
      EXPECT_EQ(version, "0") << "sample " << id;
      EXPECT_EQ(first_new, kSamples) << "sample " << id << " answered by v0 after the swap";
    }
  }
  EXPECT_GT(first_new, kPublishAt - 1);
  EXPECT_LE(first_new, kSwappedBy);
  const RuntimeStats stats = runtime.stats();
  EXPECT_EQ(stats.processed, static_cast<int64_t>(kSamples));
  EXPECT_EQ(stats.answered, static_cast<int64_t>(kSamples));
}

// About 500 samples/s, each also sent to the cloud service, while the updater's polling
// thread downloads, loads, checks and installs a new version mid-stream: every sample is
// answered exactly once, and none later than its deadline (arrival + the runtime's cloud
// timeout, the latest a cloud-bound answer may come) because of the swap. Loading and
// checking run on the updater's thread; the swap itself is a pointer exchange.
TEST(Updater, HotSwapAt500SamplesPerSecondKeepsEveryDeadline) {
  constexpr uint64_t kSamples = 1500;
  constexpr double kIntervalMs = 2.0;       // 500 samples/s
  constexpr uint64_t kPublishAt = 250;
  constexpr uint64_t kSwappedBy = 1250;     // the stream waits here for the swap if need be
  constexpr double kDeadlineSlackMs = 50.0; // the deadline thread's wake-up, on a busy CPU
  Service service;

  EdgeModel initial = load_edge_model(edgefm::testing::small_models().student);
  initial.version = "0";
  const models::ImageShape shape = initial.encoder->input_shape();
  RuntimeOptions runtime_options = runtime_default_options();
  runtime_options.policy = Policy::cloud_only;  // every sample has a deadline to keep
  runtime_options.client = service.client_options();
  runtime_options.cloud_timeout_ms = 250.0;
  runtime_options.breaker_failures = 1000000;  // a slow moment must not switch the cloud off

  std::mutex mutex;
  std::map<uint64_t, Answer> answer_of;
  int duplicates = 0;
  EdgeRuntime runtime(std::move(initial), runtime_options, [&](const Answer& a) {
    std::lock_guard lock(mutex);
    if (!answer_of.emplace(a.id, a).second) ++duplicates;
  });
  const double deadline_ms = runtime.cloud_timeout_ms();

  std::atomic<uint64_t> fed{0};
  std::atomic<uint64_t> swapped_at{kSamples};  // samples fed when the install ran
  Recorder recorder;
  TempDir dir("dl");
  auto updater_owner = swapping_updater(service, dir.path, shape, runtime, recorder,
                                        [&] { swapped_at = fed.load(); });
  ModelUpdater& updater = *updater_owner;
  updater.start();

  std::thread publisher;
  std::vector<uint8_t> pixels(static_cast<size_t>(shape.numel()));
  uint32_t state = 777;
  auto next = Clock::now();
  for (uint64_t id = 0; id < kSamples; ++id) {
    if (id == kPublishAt) publisher = std::thread([&] { service.publish_version(); });
    if (id == kSwappedBy) {
      const auto give_up = Clock::now() + std::chrono::seconds(30);
      while (updater.current_version() < 1 && Clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      EXPECT_EQ(updater.current_version(), 1) << "no swap within 30 s";
      next = Clock::now();
    }
    for (auto& p : pixels) {
      state = state * 1664525u + 1013904223u;
      p = static_cast<uint8_t>(state >> 24);
    }
    std::this_thread::sleep_until(next);
    next += std::chrono::microseconds(static_cast<int64_t>(kIntervalMs * 1000));
    Sample sample;
    sample.id = id;
    sample.pixels = pixels;
    sample.arrival = Clock::now();
    runtime.process(std::move(sample));
    fed = id + 1;
  }
  runtime.drain();
  updater.stop();
  publisher.join();

  std::lock_guard lock(mutex);
  EXPECT_EQ(duplicates, 0);
  ASSERT_EQ(answer_of.size(), kSamples);  // ids 0..kSamples-1, each once
  EXPECT_EQ(answer_of.rbegin()->first, kSamples - 1);
  const uint64_t swap = swapped_at.load();
  ASSERT_GT(swap, kPublishAt - 1);
  ASSERT_LT(swap, kSamples);
  uint64_t first_new = kSamples;
  double worst_ms = 0.0, worst_near_swap_ms = 0.0;
  for (const auto& [id, a] : answer_of) {
    if (a.model_version == "1") first_new = std::min(first_new, id);
    if (a.model_version == "0") {
      EXPECT_EQ(first_new, kSamples) << "sample " << id << " answered by v0 after the swap";
    }
    EXPECT_LE(a.latency_ms, deadline_ms + kDeadlineSlackMs)
        << "sample " << id << " (" << answer_route_name(a.route) << ") answered past its deadline";
    worst_ms = std::max(worst_ms, a.latency_ms);
    if (id + 50 >= swap && id <= swap + 50) worst_near_swap_ms = std::max(worst_near_swap_ms, a.latency_ms);
  }
  EXPECT_LE(first_new, swap + 1);  // the sample after the install uses the new model
  const RuntimeStats stats = runtime.stats();
  std::printf("[hot swap at 500/s] install after %llu samples; worst latency %.1f ms (%.1f ms "
              "within 50 samples of the swap), deadline %.0f ms; %lld cloud, %lld fallback\n",
              static_cast<unsigned long long>(swap), worst_ms, worst_near_swap_ms, deadline_ms,
              static_cast<long long>(stats.cloud), static_cast<long long>(stats.fallback));
  EXPECT_EQ(stats.processed, static_cast<int64_t>(kSamples));
  EXPECT_EQ(stats.answered, static_cast<int64_t>(kSamples));
}

}  // namespace
}  // namespace edgefm::edge
