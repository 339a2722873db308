// End to end: `edgefm devices` on a registry file, and `edgefm serve --devices` with the real
// edge uploading under its own device token: its uploads land on its device, the same token
// under another device's name is refused, and `devices list` shows what the service saw.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "common/json_io.h"
#include "harness/process.h"
#include "support/fixtures.h"
#include "support/live.h"

namespace edgefm {
namespace {
namespace fs = std::filesystem;

fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() /
                 ("edgefm-e2e-devices-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

struct Outcome {
  int status = -1;
  std::string out, err;
};

// `edgefm <args>` with stdout and stderr captured.
Outcome run_edgefm(const std::string& args, const fs::path& dir) {
  const fs::path out = dir / "stdout", err = dir / "stderr";
  const int raw = std::system((std::string(EDGEFM_BIN) + " " + args + " > " + out.string() +
                               " 2> " + err.string()).c_str());
  auto text = [](const fs::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, text(out), text(err)};
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

TEST(Devices, AddListRevokeOnTheRegistryFile) {
  const fs::path dir = scratch("cli");
  const std::string file = (dir / "devices.json").string();
  Outcome add = run_edgefm("devices add cam-1 --devices " + file, dir);
  ASSERT_EQ(add.status, 0) << add.err;
  const std::string token = trimmed(add.out);
  EXPECT_EQ(token.rfind("edgefm-", 0), 0u) << add.out;
  EXPECT_EQ(token.find('\n'), std::string::npos);  // the token alone on stdout
  EXPECT_NE(add.err.find("shown once"), std::string::npos) << add.err;
  {
    std::ifstream in(file);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(text.find(token), std::string::npos);  // only its hash is kept
  }

  Outcome again = run_edgefm("devices add cam-1 --devices " + file, dir);
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("already registered"), std::string::npos) << again.err;
  EXPECT_EQ(again.err.find('\n'), again.err.size() - 1) << again.err;  // one line

  ASSERT_EQ(run_edgefm("devices add cam-2 --devices " + file, dir).status, 0);
  Outcome list = run_edgefm("devices list --devices " + file + " --json " + (dir / "list.json").string(), dir);
  ASSERT_EQ(list.status, 0) << list.err;
  EXPECT_NE(list.out.find("cam-1"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("never"), std::string::npos) << list.out;  // no contact yet
  json listed = read_json_file(dir / "list.json");
  ASSERT_EQ(listed["devices"].size(), 2u);
  EXPECT_EQ(listed["devices"][1]["device"], "cam-2");
  EXPECT_EQ(listed["devices"][1]["revoked"], false);
  EXPECT_TRUE(listed.contains("provenance"));

  ASSERT_EQ(run_edgefm("devices revoke cam-2 --devices " + file, dir).status, 0);
  list = run_edgefm("devices list --devices " + file, dir);
  EXPECT_NE(list.out.find("revoked"), std::string::npos) << list.out;
  Outcome unknown = run_edgefm("devices revoke nobody --devices " + file, dir);
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.err.find("no device 'nobody'"), std::string::npos) << unknown.err;

  // Usage errors: exit 2, one line.
  Outcome missing = run_edgefm("devices add cam-3", dir);
  EXPECT_EQ(missing.status, 2) << missing.err;
  EXPECT_NE(missing.err.find("--devices"), std::string::npos) << missing.err;
  Outcome bad = run_edgefm("devices add 'a/b' --devices " + file, dir);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("device name"), std::string::npos) << bad.err;
  Outcome workers = run_edgefm("serve --job-workers 0", dir);
  EXPECT_EQ(workers.status, 2) << workers.err;
  Outcome alone = run_edgefm("serve --devices " + file + " --fm " + testing::small_models().fm, dir);
  EXPECT_EQ(alone.status, 2) << alone.err;
  EXPECT_NE(alone.err.find("--customization-dir"), std::string::npos) << alone.err;
  fs::remove_all(dir);
}

TEST(Devices, TheEdgeUploadsWithItsOwnTokenAndOnlyToItsOwnDevice) {
  const fs::path dir = scratch("live");
  const auto& models = testing::small_models();
  const std::string registry = (dir / "devices.json").string();
  Outcome add = run_edgefm("devices add cam --devices " + registry, dir);
  ASSERT_EQ(add.status, 0) << add.err;
  const std::string token = trimmed(add.out);
  ASSERT_EQ(run_edgefm("devices add other --devices " + registry, dir).status, 0);

  auto serve = std::make_unique<harness::ChildProcess>(
      EDGEFM_BIN,
      std::vector<std::string>{"serve", "--fm", models.fm, "--port", "0", "--port-file",
                               (dir / "serve.port").string(), "--token", "admin-secret",
                               "--customization-dir", (dir / "cloud").string(), "--devices",
                               registry, "--job-workers", "2", "--max-samples-per-device", "1000"},
      (dir / "serve.log").string());
  const int port = testing::wait_for_port(*serve, dir / "serve.port");
  ASSERT_GT(port, 0);

  auto run_edge = [&](const std::string& device, const std::string& name, double drain_s) {
    harness::ChildProcess edge(
        EDGEFM_BIN,
        {"edge", "--student", models.student, "--server", "http://127.0.0.1:" + std::to_string(port),
         "--token", token, "--samples", "120", "--rate", "400", "--state", (dir / name).string(),
         "--device-name", device, "--no-jobs", "--update-poll-s", "0", "--upload-threshold", "1000",
         "--upload-per-minute", "100000", "--upload-kbps", "100000", "--drain-s",
         std::to_string(drain_s), "--json", (dir / (name + ".json")).string(), "--quiet"},
        (dir / (name + ".log")).string());
    auto status = edge.wait_for(std::chrono::seconds(120));
    EXPECT_EQ(status.value_or(-1), 0) << edge.log_tail();
    return read_json_file(dir / (name + ".json"));
  };

  // Its own device: uploads are acknowledged, answers come from the cloud too.
  json own = run_edge("cam", "edge-cam", 30);
  EXPECT_GT(own.at("customization").at("acknowledged").get<int>(), 0) << own.dump();
  EXPECT_EQ(own.at("customization").at("upload_failures").get<int>(), 0) << own.dump();
  // The inference endpoints take the device token too: no answer fell back for a refused token.
  EXPECT_EQ(own.value("fallback_reasons", json::object()).value("refused", 0), 0) << own.dump();
  EXPECT_TRUE(fs::is_directory(dir / "cloud" / "cam" / "samples"));

  // The same token under another device's name: every upload refused (403), nothing stored.
  json foreign = run_edge("other", "edge-other", 2);
  EXPECT_EQ(foreign.at("customization").at("acknowledged").get<int>(), 0) << foreign.dump();
  EXPECT_GT(foreign.at("customization").at("upload_failures").get<int>(), 0) << foreign.dump();
  EXPECT_FALSE(fs::exists(dir / "cloud" / "other" / "samples"));

  EXPECT_EQ(serve->stop(), 0) << serve->log_tail();
  Outcome list = run_edgefm("devices list --devices " + registry + " --json " + (dir / "list.json").string(), dir);
  ASSERT_EQ(list.status, 0) << list.err;
  json listed = read_json_file(dir / "list.json");
  ASSERT_EQ(listed["devices"].size(), 2u);
  const json& cam = listed["devices"][0];
  EXPECT_EQ(cam["device"], "cam");
  EXPECT_GT(cam["samples"].get<int>(), 0) << listed.dump();
  EXPECT_LE(cam["samples"].get<int>(), own.at("customization").at("acknowledged").get<int>());
  EXPECT_GT(cam["last_contact_unix"].get<double>(), 0);
  EXPECT_EQ(listed["devices"][1]["samples"], 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace edgefm
