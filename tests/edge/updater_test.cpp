// The model updater against a real customization service (in process, behind a CloudServer)
// whose fake job runner publishes the fixture student, garbage, or nothing: installs, no-news,
// rejected artifacts (unloadable, tampered, incompatible), a dead service, and a hot swap
// under a running stream with every sample answered exactly once.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cloud/customization.h"
#include "cloud/linear_model.h"
#include "edge/runtime.h"
#include "edge/updater.h"
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

enum class Publish { student, garbage };

// A customization service whose runner publishes the fixture student or garbage bytes.
struct Service {
  fs::path root = fresh_dir("service");
  std::atomic<Publish> publish{Publish::student};
  models::FoundationModel fm;
  std::unique_ptr<cloud::CustomizationService> service;
  std::unique_ptr<cloud::CloudServer> server;

  Service() {
    cloud::LinearModelOptions m = cloud::linear_model_default_options();
    m.embedding_dim = 8;
    fm = cloud::make_linear_foundation_model(m, {"a", "b", "c"});
    cloud::CustomizationOptions options = cloud::customization_default_options();
    options.root = root;
    options.sample_shape = {1, 28, 28};
    service = std::make_unique<cloud::CustomizationService>(
        options, [this](const cloud::CustomizationJob& job, const cloud::JobProgress&) -> json {
          if (publish.load() == Publish::student) {
            fs::copy_file(edgefm::testing::small_models().student, job.output,
                          fs::copy_options::overwrite_existing);
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
  UpdaterOptions options = updater_options(service.client_options(), dir.path);
  options.expected_input = shape;
  ModelUpdater updater(
      options, 0,
      [&](EdgeModel model, const json&) {
        runtime.swap_model(std::move(model));
        ++installs;
      },
      recorder.log());
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

}  // namespace
}  // namespace edgefm::edge
