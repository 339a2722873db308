// A real FM's path, end to end through the real program: a CLIP-shaped TorchScript encoder
// (3 x 224 x 224 input with CLIP's mean/std, over 20 M parameters, random weights) that this
// test writes itself, a pool file and a spec file. `edgefm customize` distills a student from
// it on a PNG class-folder data set resized to the FM's spec, `edgefm serve` embeds at that
// size, and `edgefm edge` sends unlabelled PNG files edge -> cloud. A data set of another
// spec is refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "common/json_io.h"
#include "data/image.h"
#include "models/foundation.h"
#include "models/student.h"
#include "models/text_pool.h"
#include "support/fixtures.h"

namespace edgefm {
namespace {
namespace fs = std::filesystem;

constexpr int kDim = 512;

// Three classes told apart by colour, at 40 x 48 (not the FM's size: the loader resizes).
void write_png_classes(const fs::path& root, int per_class, int offset) {
  const uint8_t colours[3][3] = {{220, 40, 40}, {40, 200, 60}, {50, 70, 230}};
  const char* names[3] = {"red", "green", "blue"};
  for (int c = 0; c < 3; ++c) {
    for (int k = 0; k < per_class; ++k) {
      data::DecodedImage image;
      image.width = 48;
      image.height = 40;
      image.channels = 3;
      for (int y = 0; y < image.height; ++y) {
        for (int x = 0; x < image.width; ++x) {
          for (int ch = 0; ch < 3; ++ch) {
            const int v = colours[c][ch] + ((x * 7 + y * 3 + (k + offset) * 11) % 31) - 15;
            image.pixels.push_back(static_cast<uint8_t>(std::clamp(v, 0, 255)));
          }
        }
      }
      data::write_png(root / names[c] / ("img" + std::to_string(k) + ".png"), image);
    }
  }
}

int run(const std::string& command) { return std::system(command.c_str()); }

TEST(RealFmPath, ClipShapedTorchScriptFromCustomizeToEdge) {
  const fs::path dir = fs::temp_directory_path() / ("edgefm-realfm-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string bin = EDGEFM_BIN;

  // As a user would: `edgefm fm clip-shaped` writes fm.ts, pool.json and spec.json.
  ASSERT_EQ(run(bin + " fm clip-shaped --classes red,green,blue --out-dir " + dir.string() + " > " +
                (dir / "stand-in.log").string() + " 2>&1"),
            0);
  const json spec = read_json_file(dir / "spec.json");
  EXPECT_EQ(spec.at("shape"), json({3, 224, 224}));

  // The encoder as the cloud loads it: over 20 M parameters, at 3 x 224 x 224.
  auto fm = models::load_torchscript_foundation_model(
      dir / "fm.ts", dir / "pool.json", data::spec_from_json(spec, "spec"));
  EXPECT_GT(fm.image->parameter_count(), 20'000'000);
  EXPECT_EQ(fm.image->input_shape(), (data::TensorShape{3, 224, 224}));
  EXPECT_EQ(fm.image->embedding_dim(), kDim);

  write_png_classes(dir / "train", 10, 0);
  write_png_classes(dir / "test", 4, 100);
  write_json_file(dir / "colours.json", {{"name", "colours"},
                                         {"source", "image_folder"},
                                         {"directory", "."},
                                         {"class_names", {"red", "green", "blue"}},
                                         {"spec", spec}});
  const std::string fm_args = " --fm-torchscript " + (dir / "fm.ts").string() + " --fm-pool " +
                              (dir / "pool.json").string() + " --fm-spec " +
                              (dir / "spec.json").string();
  const fs::path student = dir / "student.pt";
  ASSERT_EQ(run(bin + " customize" + fm_args + " --data " + (dir / "colours.json").string() +
                " --validation 9 --budget 100% --strategy random --epochs 2 --batch-size 8 --out " +
                student.string() + " > " + (dir / "customize.log").string() + " 2>&1"),
            0)
      << "see " << dir / "customize.log";
  const json meta_spec = data::to_json(data::spec_from_json(spec, "spec"));
  {
    // The artifact carries the FM's spec.
    auto s = models::load_student(student);
    EXPECT_EQ(data::to_json(s.encoder->spec()), meta_spec);
  }

  // Data of another spec (Fashion-MNIST's grey 28 x 28) cannot meet this FM.
  const std::string mismatch_log = (dir / "mismatch.log").string();
  EXPECT_NE(run(bin + " customize" + fm_args + " --train-limit 200 --validation 50 --out " +
                (dir / "x.pt").string() + " > " + mismatch_log + " 2>&1"),
            0);
  std::ifstream mismatch(mismatch_log);
  const std::string message((std::istreambuf_iterator<char>(mismatch)), {});
  EXPECT_NE(message.find("takes samples of image 3x224x224"), std::string::npos) << message;

  // serve embeds at 3 x 224 x 224; edge sends unlabelled files to it (cloud-only: every one).
  const std::string port_file = (dir / "serve.port").string();
  ASSERT_EQ(run(bin + " serve" + fm_args + " --port 0 --port-file " + port_file + " > " +
                (dir / "serve.log").string() + " 2>&1 & echo $! > " + (dir / "serve.pid").string()),
            0);
  int port = 0;
  for (int i = 0; i < 1200 && port == 0; ++i) {
    std::ifstream in(port_file);
    if (!(in >> port)) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(port, 0) << "serve did not start; see " << dir / "serve.log";
  const fs::path summary = dir / "edge.json", answers = dir / "answers.jsonl";
  const int edge_status =
      run(bin + " edge --student " + student.string() + " --server http://127.0.0.1:" +
          std::to_string(port) + " --policy cloud-only --l-app-ms 5000 --rate 0 --input " +
          (dir / "test").string() + " --log " + answers.string() + " --json " + summary.string() +
          " --quiet > " + (dir / "edge.log").string() + " 2>&1");
  // A student of another spec (grey 28 x 28) is refused by the edge against this cloud.
  const std::string refused_log = (dir / "refused.log").string();
  const int refused = run(bin + " edge --student " + testing::small_models().student +
                          " --server http://127.0.0.1:" + std::to_string(port) +
                          " --samples 5 --quiet > " + refused_log + " 2>&1");
  pid_t serve_pid = 0;
  std::ifstream(dir / "serve.pid") >> serve_pid;
  if (serve_pid > 0) ::kill(serve_pid, SIGTERM);
  ASSERT_EQ(edge_status, 0) << "see " << dir / "edge.log";
  EXPECT_NE(refused, 0);
  std::ifstream refused_in(refused_log);
  const std::string refusal((std::istreambuf_iterator<char>(refused_in)), {});
  EXPECT_NE(refusal.find("the cloud's FM"), std::string::npos) << refusal;

  const json result = read_json_file(summary);
  EXPECT_EQ(result.at("samples").get<int>(), 12);
  EXPECT_EQ(result.at("with_truth").get<int>(), 0);  // unlabelled input
  EXPECT_EQ(result.at("counts").at("cloud").get<int>(), 12);
  // One 8-bit 3 x 224 x 224 tensor per query, plus the request's framing.
  const double per_query = result.at("bytes_up").get<double>() / 12.0;
  EXPECT_GE(per_query, 3 * 224 * 224);
  EXPECT_LT(per_query, 3 * 224 * 224 + 4096);
  std::ifstream lines(answers);
  std::string line;
  int with_file = 0;
  while (std::getline(lines, line)) {
    const json a = json::parse(line);
    if (a.value("file", "").find(".png") != std::string::npos) ++with_file;
    EXPECT_EQ(a.at("route"), "cloud");
  }
  EXPECT_EQ(with_file, 12);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace edgefm
