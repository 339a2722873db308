// The device registry: tokens stored hashed, add / revoke / re-add on the file, the service's
// live view following changes made on the file, and the status it writes back.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

#include "cloud/device_registry.h"
#include "common/checksum.h"
#include "common/error.h"
#include "common/json_io.h"

namespace edgefm::cloud {
namespace {

namespace fs = std::filesystem;

struct TempRegistry {
  fs::path dir;
  fs::path file;
  TempRegistry() {
    static std::atomic<int> counter{0};
    dir = fs::temp_directory_path() /
          ("edgefm-registry-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(dir);
    file = dir / "devices.json";
  }
  ~TempRegistry() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

std::string file_text(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(DeviceRegistry, TokensAreRandomAndStoredOnlyAsTheirHash) {
  TempRegistry r;
  EXPECT_TRUE(read_device_registry(r.file).empty());  // no file yet: no devices
  const std::string a = add_registry_device(r.file, "cam-a");
  const std::string b = add_registry_device(r.file, "cam-b");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("edgefm-", 0), 0u);
  EXPECT_EQ(a.size(), 7u + 64u);
  const std::string text = file_text(r.file);
  EXPECT_EQ(text.find(a), std::string::npos);
  EXPECT_EQ(text.find(b), std::string::npos);
  EXPECT_NE(text.find(sha256_hex(a)), std::string::npos);
  EXPECT_EQ(fs::status(r.file).permissions() & fs::perms::others_read, fs::perms::none);

  auto devices = read_device_registry(r.file);
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].name, "cam-a");
  EXPECT_EQ(devices[0].token_sha256, sha256_hex(a));
  EXPECT_FALSE(devices[0].revoked());
  EXPECT_GT(devices[0].added_unix, 0);
  EXPECT_EQ(devices[0].samples, 0);
  EXPECT_EQ(devices[0].model_version, 0);
  EXPECT_EQ(devices[0].last_contact_unix, 0);

  std::set<std::string> many;
  for (int i = 0; i < 100; ++i) many.insert(new_device_token());
  EXPECT_EQ(many.size(), 100u);
}

TEST(DeviceRegistry, AddRevokeAndAddAgain) {
  TempRegistry r;
  const std::string first = add_registry_device(r.file, "cam");
  EXPECT_THROW(add_registry_device(r.file, "cam"), Error);  // already active
  EXPECT_THROW(add_registry_device(r.file, ".hidden"), Error);
  EXPECT_THROW(add_registry_device(r.file, "a/b"), Error);
  EXPECT_THROW(revoke_registry_device(r.file, "nobody"), Error);
  revoke_registry_device(r.file, "cam");
  EXPECT_TRUE(read_device_registry(r.file).at(0).revoked());
  EXPECT_THROW(revoke_registry_device(r.file, "cam"), Error);  // already revoked
  const std::string second = add_registry_device(r.file, "cam");
  EXPECT_NE(first, second);
  auto devices = read_device_registry(r.file);
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_FALSE(devices[0].revoked());
  EXPECT_EQ(devices[0].token_sha256, sha256_hex(second));
}

TEST(DeviceRegistry, ServiceViewFollowsTheFile) {
  TempRegistry r;
  DeviceRegistry live(r.file);  // creates an empty registry
  EXPECT_TRUE(fs::exists(r.file));
  EXPECT_FALSE(live.authenticate("edgefm-anything").has_value());
  EXPECT_FALSE(live.authenticate("").has_value());

  const std::string a = add_registry_device(r.file, "a");
  EXPECT_EQ(live.authenticate(a).value(), "a");
  EXPECT_TRUE(live.contains("a"));
  EXPECT_FALSE(live.authenticate(a + "x").has_value());
  EXPECT_FALSE(live.authenticate(sha256_hex(a)).has_value());  // the hash is not the token

  revoke_registry_device(r.file, "a");
  EXPECT_FALSE(live.authenticate(a).has_value());
  EXPECT_FALSE(live.contains("a"));
  const std::string renewed = add_registry_device(r.file, "a");
  EXPECT_FALSE(live.authenticate(a).has_value());
  EXPECT_EQ(live.authenticate(renewed).value(), "a");
}

TEST(DeviceRegistry, StatusIsWrittenBackWithoutLosingOthersChanges) {
  TempRegistry r;
  const std::string a = add_registry_device(r.file, "a");
  DeviceRegistry live(r.file);
  ASSERT_TRUE(live.authenticate(a).has_value());
  live.note_samples("a", 12);
  live.note_model_version("a", 3);
  live.note_samples("not-registered", 5);  // an admin's upload for a device with no token
  // Meanwhile the command line adds a device.
  add_registry_device(r.file, "b");
  live.flush();
  auto devices = read_device_registry(r.file);
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].samples, 12);
  EXPECT_EQ(devices[0].model_version, 3);
  EXPECT_GT(devices[0].last_contact_unix, 0);
  EXPECT_EQ(devices[1].name, "b");
  EXPECT_EQ(devices[1].last_contact_unix, 0);
  auto listed = live.devices();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].samples, 12);
}

TEST(DeviceRegistry, ConcurrentAddsAllLand) {
  TempRegistry r;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&r, i] { add_registry_device(r.file, "dev-" + std::to_string(i)); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(read_device_registry(r.file).size(), 8u);
}

TEST(DeviceRegistry, ANonRegistryFileIsRefused) {
  TempRegistry r;
  fs::create_directories(r.dir);
  write_json_file(r.file, {{"something", "else"}});
  EXPECT_THROW(read_device_registry(r.file), Error);
  EXPECT_THROW(DeviceRegistry live(r.file), Error);
  EXPECT_THROW(add_registry_device(r.file, "a"), Error);
}

}  // namespace
}  // namespace edgefm::cloud
