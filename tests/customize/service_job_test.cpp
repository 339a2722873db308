// The customization service's real job: request validation, the held-out split, `edgefm
// profile`, and one end-to-end customization round through HTTP with the small fixture FM.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <filesystem>

#include "cloud/customization.h"
#include "cloud/customization_client.h"
#include "common/checksum.h"
#include "common/progress.h"
#include "customize/service_job.h"
#include "data/dataset.h"
#include "models/foundation.h"
#include "models/student.h"
#include "route/scores.h"
#include "route/threshold.h"
#include "support/fixtures.h"

namespace edgefm::customize {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() /
                 ("edgefm-service-job-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

json synthetic_profile() {
  return {{"format", "edgefm-device-profile"},
          {"version", 1},
          {"device", "test-device"},
          {"architectures",
           {{{"arch", "tiny-cnn"}, {"latency_ms", 0.4}, {"peak_memory_mb", 6.0}},
            {{"arch", "mobilenet"}, {"latency_ms", 1.5}, {"peak_memory_mb", 14.0}},
            {{"arch", "wide-cnn"}, {"latency_ms", 6.0}, {"peak_memory_mb", 60.0}}}}};
}

const models::FoundationModel& fixture_fm() {
  static const models::FoundationModel fm =
      models::load_foundation_model(edgefm::testing::small_models().fm);
  return fm;
}

TEST(ServiceJob, HoldoutByHashIsStableAndKeepsBothSidesNonEmpty) {
  std::vector<std::string> hashes;
  for (int i = 0; i < 400; ++i) hashes.push_back(sha256_hex(std::to_string(i)));
  auto held = holdout_by_hash(hashes, 0.25);
  size_t count = std::count(held.begin(), held.end(), true);
  EXPECT_GT(count, 60u);
  EXPECT_LT(count, 140u);
  // The same sample lands on the same side whatever else is in the set.
  std::vector<std::string> fewer(hashes.begin(), hashes.begin() + 100);
  auto held_fewer = holdout_by_hash(fewer, 0.25);
  for (size_t i = 0; i + 1 < fewer.size(); ++i) EXPECT_EQ(held_fewer[i], held[i]) << i;
  // Two samples: one on each side, whatever their hashes.
  auto two = holdout_by_hash({std::string(64, 'f'), std::string(64, 'f')}, 0.2);
  EXPECT_EQ(std::count(two.begin(), two.end(), true), 1);
  auto two_low = holdout_by_hash({std::string(64, '0'), std::string(64, '0')}, 0.2);
  EXPECT_EQ(std::count(two_low.begin(), two_low.end(), true), 1);
}

TEST(ServiceJob, RequestValidationNamesTheProblem) {
  const auto& fm = fixture_fm();
  const std::vector<std::string> two = {fm.pool.name(1), fm.pool.name(8)};
  auto parsed = ServiceJobRequest::parse(
      {{"profile", synthetic_profile()}, {"budget", {{"latency_ms", 2.0}}}, {"classes", two}, {"epochs", 3}},
      fm);
  EXPECT_EQ(parsed.distill.epochs, 3);
  EXPECT_EQ(parsed.classes, two);
  EXPECT_DOUBLE_EQ(parsed.budget.latency_ms, 2.0);
  EXPECT_EQ(ServiceJobRequest::parse({{"profile", synthetic_profile()}}, fm).classes.size(),
            fm.pool.size());

  auto message = [&](const json& request) {
    try {
      ServiceJobRequest::parse(request, fm);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message(json::object()).find("missing field 'profile'"), std::string::npos);
  json profile = synthetic_profile();
  EXPECT_NE(message({{"profile", profile}, {"epoch", 3}}).find("'epoch'"), std::string::npos);
  EXPECT_NE(message({{"profile", profile}, {"epochs", 0}}).find("'epochs'"), std::string::npos);
  EXPECT_NE(message({{"profile", profile}, {"holdout", 1.5}}).find("'holdout'"), std::string::npos);
  EXPECT_NE(message({{"profile", profile}, {"classes", {fm.pool.name(1), "Unicorn"}}}).find("'Unicorn'"),
            std::string::npos);
  EXPECT_NE(message({{"profile", profile}, {"score", "vibes"}}).find("'vibes'"), std::string::npos);
  EXPECT_NE(message({{"profile", profile}, {"outliers", -1}}).find("'outliers'"), std::string::npos);
  EXPECT_NE(message({{"profile", profile}, {"balance", 1.5}}).find("'balance'"), std::string::npos);
  EXPECT_NE(message({{"profile", profile}, {"balance", "yes"}}).find("'balance'"), std::string::npos);
  EXPECT_EQ(message({{"profile", profile}, {"balance", 0.5}}), "accepted");
  EXPECT_NE(message({{"profile", profile}, {"budget", {{"latency_ms", -1}}}}).find("latency_ms"),
            std::string::npos);
  EXPECT_NE(message({{"profile", profile}, {"budget", {{"memory_mb", 1}}}}).find("none that fits"),
            std::string::npos);
  profile["architectures"][0]["arch"] = "resnet-900";
  EXPECT_NE(message({{"profile", profile}}).find("resnet-900"), std::string::npos);
}

// `edgefm profile` measures every architecture; the measured profile drives the choice, and
// the choice changes with the latency budget.
TEST(ServiceJob, ProfileCommandWritesAProfileTheChoiceUses) {
  const fs::path dir = fresh_dir("profile");
  const fs::path out = dir / "profile.json";
  const std::string command = std::string(EDGEFM_BIN) +
                              " profile --repetitions 10 --warmup 2 --threads 1 --device-name bench-box --json " +
                              out.string() + " > " + (dir / "log.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  auto profile = DeviceProfile::from_json(read_json_file(out));
  EXPECT_EQ(profile.device, "bench-box");
  ASSERT_EQ(profile.architectures.size(), 3u);
  for (const auto& a : profile.architectures) {
    EXPECT_GT(a.latency_ms, 0) << a.arch;
    EXPECT_GT(a.peak_memory_mb, 0) << a.arch;
  }
  // The weights are resident while the model runs, so the peak covers them, and wide-cnn's
  // extra weights over tiny-cnn's show up in its peak.
  json raw = read_json_file(out);
  std::map<std::string, double> weights_mb;
  for (const auto& row : raw["architectures"]) weights_mb[row["arch"]] = row["parameter_mb"];
  for (const auto& a : profile.architectures) EXPECT_GE(a.peak_memory_mb, weights_mb[a.arch]) << a.arch;
  EXPECT_GT(profile.find("wide-cnn")->peak_memory_mb - profile.find("tiny-cnn")->peak_memory_mb,
            0.5 * (weights_mb["wide-cnn"] - weights_mb["tiny-cnn"]));

  // Accuracy rising with cost, as distillation usually gives: a budget that admits only the
  // fastest architecture and one that admits all choose differently.
  std::map<std::string, double> accuracy = {{"tiny-cnn", 0.7}, {"mobilenet", 0.8}, {"wide-cnn", 0.9}};
  double fastest = 1e9;
  for (const auto& a : profile.architectures) fastest = std::min(fastest, a.latency_ms);
  ResourceBudget tight;
  tight.latency_ms = fastest;
  ResourceBudget loose;
  loose.latency_ms = 1e6;
  const auto tight_choice = choose_architecture(accuracy, profile, tight);
  const auto loose_choice = choose_architecture(accuracy, profile, loose);
  EXPECT_EQ(profile.find(tight_choice.arch)->latency_ms, fastest);
  EXPECT_EQ(loose_choice.arch, "wide-cnn");
  if (tight_choice.arch != "wide-cnn") {
    EXPECT_NE(tight_choice.arch, loose_choice.arch);
  }
  fs::remove_all(dir);
}

// One customization round through HTTP with the real runner and the fixture FM.
TEST(ServiceJob, EndToEndCustomizationRoundThroughHttp) {
  Progress::set_quiet(true);
  const auto& fm = fixture_fm();
  const fs::path dir = fresh_dir("e2e");
  cloud::CustomizationOptions options = cloud::customization_default_options();
  options.root = dir / "cloud";
  options.sample_shape = fm.image->input_shape();
  cloud::CustomizationService service(options, make_job_runner(fm), make_job_validator(fm));
  cloud::ServerOptions server_options = cloud::server_default_options();
  server_options.token = "tok";
  server_options.threads = 8;
  cloud::CloudServer server(fm, server_options, {service.extension()});
  cloud::ClientOptions client_options = cloud::client_default_options();
  client_options.url = server.url();
  client_options.token = "tok";
  client_options.read_timeout_s = 30;
  cloud::CustomizationClient client(client_options);

  // The edge uploads 600 unlabeled images in batches, 40 of them twice.
  auto images = data::load_dataset(data::fashion_mnist_description(), data::Part::test, 600);
  const size_t bytes = images.sample_size();
  std::vector<std::string> samples;
  for (size_t i = 0; i < images.size(); ++i) {
    samples.emplace_back(reinterpret_cast<const char*>(images.sample(i)), bytes);
  }
  size_t added = 0;
  for (size_t start = 0; start < samples.size(); start += 100) {
    std::vector<std::string_view> batch(samples.begin() + start,
                                        samples.begin() + std::min(samples.size(), start + 100));
    added += client.upload_samples("cam", batch, options.sample_shape).added;
  }
  std::vector<std::string_view> repeat(samples.begin(), samples.begin() + 40);
  EXPECT_EQ(client.upload_samples("cam", repeat, options.sample_shape).added, 0u);
  std::set<std::string> distinct;
  for (const auto& s : samples) distinct.insert(sha256_hex(s));
  EXPECT_EQ(added, distinct.size());

  // Invalid requests are refused before they queue.
  try {
    client.submit_job("cam", {{"profile", synthetic_profile()}, {"classes", {"Unicorn", fm.pool.name(8)}}});
    FAIL() << "expected 400";
  } catch (const cloud::RequestError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(e.server_message().find("Unicorn"), std::string::npos);
  }

  // A 2 ms budget admits tiny-cnn and mobilenet: both get a lookup-table entry.
  json request = {{"profile", synthetic_profile()},
                  {"budget", {{"latency_ms", 2.0}, {"memory_mb", 32}}},
                  {"epochs", 5},
                  {"table_epochs", 1},
                  {"batch_size", 32},
                  {"holdout", 0.25}};
  json job = client.submit_job("cam", request);
  json done = client.wait_for_job(job["id"], 120, 0.05);
  ASSERT_EQ(done["state"], "done") << done.dump(2);
  EXPECT_EQ(done["version"], 1);
  const std::string arch = done["arch"];
  EXPECT_TRUE(arch == "tiny-cnn" || arch == "mobilenet") << arch;
  const json summary = done["result"]["summary"];
  const json table = summary["lookup_table"]["table"];
  ASSERT_EQ(table.size(), 3u);
  EXPECT_TRUE(table[0]["accuracy"].is_number());
  EXPECT_TRUE(table[1]["accuracy"].is_number());
  EXPECT_TRUE(table[2]["accuracy"].is_null());  // wide-cnn is outside the budget
  EXPECT_FALSE(table[2]["within_latency"].get<bool>());
  EXPECT_EQ(summary["uploaded"], distinct.size());
  EXPECT_EQ(summary["train_samples"].get<size_t>() + summary["holdout_samples"].get<size_t>(),
            distinct.size());
  EXPECT_FALSE(summary["warm_start"].get<bool>());
  std::fprintf(stderr, "round 1: %s, held-out agreement with the FM %.3f, %.1f s\n", arch.c_str(),
               summary["holdout_accuracy"].get<double>(), summary["seconds"].get<double>());
  // Agreement with the FM on held-out uploads, well above chance (10 classes).
  EXPECT_GT(summary["holdout_accuracy"].get<double>(), 0.3) << summary.dump(2);

  // The artifact: checksum verified on download, loadable, with what the edge needs.
  const fs::path artifact = dir / "edge" / "model-v1.pt";
  json meta = client.download_artifact("cam", 1, artifact);
  EXPECT_EQ(meta["sha256"], sha256_file(artifact));
  auto student = models::load_student(artifact);
  EXPECT_EQ(student.encoder->arch(), arch);
  EXPECT_EQ(student.meta["version"], 1);
  EXPECT_EQ(student.pool.size(), fm.pool.size());
  EXPECT_EQ(student.meta["device"], "cam");
  EXPECT_DOUBLE_EQ(student.meta["t_edge_ms"].get<double>(), arch == "tiny-cnn" ? 0.4 : 1.5);
  auto calibration = route::CalibrationProfile::from_json(student.meta["calibration"], "artifact");
  EXPECT_EQ(calibration.samples, summary["holdout_samples"].get<size_t>());
  // fm_correct is 1 by definition: with everything offloaded, accuracy is 1.
  EXPECT_DOUBLE_EQ(calibration.points.back().accuracy, 1.0);
  EXPECT_TRUE(student.meta.contains("score"));

  // A second round with a budget only tiny-cnn meets: version 2, tiny-cnn, warm-started
  // exactly when the first round chose tiny-cnn too. It also imitates synthetic outliers (MSE
  // only) and ships the fitted mahalanobis score.
  request["budget"] = {{"latency_ms", 0.5}};
  request["epochs"] = 1;
  request["outliers"] = 0.5;
  request["lambda"] = 0.0;
  request["score"] = "mahalanobis";
  request["balance"] = 0.5;
  json second = client.wait_for_job(client.submit_job("cam", request)["id"], 120, 0.05);
  ASSERT_EQ(second["state"], "done") << second.dump(2);
  EXPECT_EQ(second["version"], 2);
  EXPECT_EQ(second["arch"], "tiny-cnn");
  EXPECT_EQ(second["result"]["summary"]["warm_start"].get<bool>(), arch == "tiny-cnn");
  const json second_summary = second["result"]["summary"];
  EXPECT_EQ(second_summary["outliers"].get<size_t>(), second_summary["train_samples"].get<size_t>() / 2);
  EXPECT_DOUBLE_EQ(second_summary["balance"].get<double>(), 0.5);
  (void)client.download_artifact("cam", 2, dir / "edge" / "model-v2.pt");
  auto second_student = models::load_student(dir / "edge" / "model-v2.pt");
  EXPECT_EQ(second_student.meta["score"]["name"], "mahalanobis");
  EXPECT_NO_THROW(route::score_from_json(second_student.meta["score"], "v2 score"));
  EXPECT_EQ((*client.latest_artifact("cam"))["version"], 2);

  // A budget nothing meets is refused at once, with the lookup table in the message.
  request["budget"] = {{"latency_ms", 0.1}};
  try {
    client.submit_job("cam", request);
    FAIL() << "expected 400";
  } catch (const cloud::RequestError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(e.server_message().find("got none that fits"), std::string::npos) << e.what();
  }
  server.stop();
  service.stop();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace edgefm::customize
