// End to end through the real program: FM training, customization and evaluation on a
// small subset. The distilled student must beat an untrained one by a clear margin.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json_io.h"
#include "customize/job.h"
#include "data/dataset.h"
#include "models/edge.h"
#include "models/foundation.h"
#include "models/student.h"
#include "support/fixtures.h"

using namespace edgefm;

namespace {

double accuracy(const models::ImageEncoder& encoder, const models::TextPool& pool,
                const data::Dataset& test) {
  auto e = customize::embed_dataset(encoder, pool, test);
  return customize::fraction_correct(
      customize::correct_predictions(e, customize::pool_to_label(pool, test), test.labels));
}

TEST(Pipeline, DistilledStudentBeatsAnUntrainedOne) {
  const auto& fixture = edgefm::testing::small_models();
  auto test = data::load_dataset(data::fashion_mnist_description(), data::Part::test, 1000);
  auto student = models::load_student(fixture.student);
  auto untrained = models::make_edge_model(student.encoder->arch(), student.encoder->spec(), student.pool.dim(), 3);
  double trained_accuracy = accuracy(*student.encoder, student.pool, test);
  double untrained_accuracy = accuracy(*untrained, student.pool, test);
  EXPECT_GT(trained_accuracy, untrained_accuracy + 0.3)
      << "trained " << trained_accuracy << " untrained " << untrained_accuracy;
  EXPECT_GT(trained_accuracy, 0.6);
  // The artifact carries what the edge needs to route.
  EXPECT_TRUE(student.meta.contains("score"));
  EXPECT_TRUE(student.meta.contains("calibration"));
  EXPECT_EQ(student.meta["customize"]["uploaded"], 2000);  // 50 % of 4000 training images
}

TEST(Pipeline, FmIsMuchLargerThanTheSmallestEdgeModel) {
  auto fm = models::load_foundation_model(edgefm::testing::small_models().fm);
  // The fixture FM is narrow (width 8) to train fast; the default width is 32.
  auto smallest = models::make_edge_model(models::edge_architectures().front().name, data::default_image_spec(), 128);
  EXPECT_GT(fm.image->parameter_count(), smallest->parameter_count());
  ASSERT_NE(fm.text, nullptr);
  EXPECT_EQ(fm.text->embed("a photo of a coat").size(), static_cast<size_t>(fm.pool.dim()));
  EXPECT_THROW(fm.text->embed("a photo of a dog"), Error);
}

TEST(Pipeline, EvalCommandWritesJsonCurveAndPlot) {
  const auto& fixture = edgefm::testing::small_models();
  auto dir = std::filesystem::path(edgefm::testing::fixture_dir()) / "eval";
  std::string command = std::string(EDGEFM_BIN) + " eval --fm " + fixture.fm + " --student " +
                        fixture.student + " --test-limit 600 --train-limit 4000 --open-set " +
                        EDGEFM_SOURCE_DIR + "/configs/split-default.json=" + fixture.seen_student +
                        " --out-dir " + dir.string() + " --json " + (dir / "eval.json").string() +
                        " > " + (dir.parent_path() / "eval.log").string() + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  auto report = read_json_file(dir / "eval.json");
  for (const char* key : {"accuracy", "params", "latency_ms_b1"}) {
    EXPECT_TRUE(report["fm"].contains(key)) << key;
    EXPECT_TRUE(report["edge"].contains(key)) << key;
  }
  double offload = report["edgefm"]["offload_ratio"];
  EXPECT_GE(offload, 0.0);
  EXPECT_LE(offload, 1.0);
  // Seen-only student: the feature-space knn score separates unseen classes better than
  // chance even on this small fixture (the margin need not: the paper's score is often
  // confidently wrong on classes the student never saw).
  const auto& scores = report["open_set"]["splits"][0]["scores"];
  EXPECT_GT(scores["knn"]["auroc"].get<double>(), 0.6);
  for (const auto& [name, m] : scores.items()) {
    EXPECT_GE(m["auroc"].get<double>(), 0.0) << name;
    EXPECT_LE(m["auroc"].get<double>(), 1.0) << name;
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "curve.csv"));
  // 10 scores, the routing score as shipped, and the routing score on an untrained student.
  EXPECT_EQ(report["open_set"]["splits"][0]["scores"].size(), 12u);
  EXPECT_TRUE(scores.contains("untrained:" + report["open_set"]["score"].get<std::string>()));
  EXPECT_TRUE(report["open_set"].contains("auroc_untrained"));
  EXPECT_TRUE(scores.contains("mahalanobis"));
  EXPECT_TRUE(scores.contains("hybrid"));
}

TEST(Pipeline, BadInputsGetClearErrors) {
  std::string bin = EDGEFM_BIN;
  auto run = [&](const std::string& args) {
    return std::system((bin + " " + args + " > /dev/null 2>&1").c_str());
  };
  EXPECT_NE(run("eval --fm /nonexistent.pt"), 0);
  EXPECT_NE(run("customize --fm " + edgefm::testing::small_models().fm + " --arch resnet-9000"), 0);
  EXPECT_NE(run("customize --fm " + edgefm::testing::small_models().fm + " --strategy best"), 0);
  EXPECT_NE(run("no-such-command"), 0);
  EXPECT_EQ(run("--help"), 0);
  // The artifact signing secret: a missing or too short key file stops serve and edge.
  const auto dir = std::filesystem::temp_directory_path() / ("edgefm-key-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "short") << "abc\n";
  const auto fm = edgefm::testing::small_models().fm;
  const auto student = edgefm::testing::small_models().student;
  const std::string message_file = (dir / "message").string();
  EXPECT_NE(std::system((bin + " serve --fm " + fm + " --customization-dir " + (dir / "c").string() +
                         " --artifact-key-file " + (dir / "short").string() + " > " + message_file +
                         " 2>&1").c_str()),
            0);
  std::ifstream in(message_file);
  const std::string message((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(message.find("at least 16 bytes"), std::string::npos) << message;
  EXPECT_NE(run("edge --student " + student + " --artifact-key-file " + (dir / "none").string()), 0);

  // An FM file with 8 bytes overwritten inside its weights is refused at load.
  const auto corrupt = dir / "corrupt-fm.pt";
  std::filesystem::copy_file(fm, corrupt);
  {
    std::fstream f(corrupt, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(corrupt) / 2));
    f.write("\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f", 8);
  }
  const std::string corrupt_message = (dir / "corrupt-message").string();
  EXPECT_EQ(WEXITSTATUS(std::system((bin + " fm eval --fm " + corrupt.string() + " --test-limit 50 > " +
                                     corrupt_message + " 2>&1").c_str())),
            1);
  std::ifstream corrupt_in(corrupt_message);
  const std::string corrupt_text((std::istreambuf_iterator<char>(corrupt_in)), {});
  EXPECT_NE(corrupt_text.find("corrupt"), std::string::npos) << corrupt_text;
  std::filesystem::remove_all(dir);
}

}  // namespace
