#include <gtest/gtest.h>
#include <torch/script.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "models/edge.h"
#include "models/fm.h"
#include "models/foundation.h"
#include "models/student.h"
#include "models/text_pool.h"

namespace fs = std::filesystem;
using namespace edgefm;
using namespace edgefm::models;

namespace {

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("edgefm-models-" + std::to_string(::getpid()) + "-" + name);
  fs::create_directories(dir);
  return dir;
}

std::vector<float> ramp_images(int n) {
  std::vector<float> images(static_cast<size_t>(n) * 784);
  for (size_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>((i * 37) % 255) / 255.0f;
  return images;
}

TEST(EdgeModels, PoolIsOrderedByCostAndEmbeddingsAreNormalised) {
  const auto& archs = edge_architectures();
  ASSERT_GE(archs.size(), 3u);
  int64_t previous = 0;
  for (const auto& spec : archs) {
    auto model = make_edge_model(spec.name, data::default_image_spec(), 64);
    EXPECT_EQ(model->embedding_dim(), 64);
    EXPECT_GT(model->multiply_adds(), previous) << spec.name;
    previous = model->multiply_adds();
    auto images = ramp_images(3);
    std::vector<float> out(3 * 64);
    model->embed(images.data(), 3, out.data());
    for (int r = 0; r < 3; ++r) {
      double norm = 0;
      for (int k = 0; k < 64; ++k) norm += out[r * 64 + k] * out[r * 64 + k];
      EXPECT_NEAR(norm, 1.0, 1e-4);
    }
  }
  EXPECT_THROW(make_edge_model("resnet-1000", data::default_image_spec(), 64), Error);
}

TEST(EdgeModels, TinyCnnCountsByHand) {
  auto tiny = make_edge_model("tiny-cnn", data::default_image_spec(), 128);
  // conv 1->16 (3x3 + bias), conv 16->32, linear 1568->64, linear 64->128
  EXPECT_EQ(tiny->parameter_count(),
            (9 * 16 + 16) + (144 * 32 + 32) + (1568 * 64 + 64) + (64 * 128 + 128));
  EXPECT_EQ(tiny->multiply_adds(), 28 * 28 * 16 * 9 + 14 * 14 * 32 * 144 + 1568 * 64 + 64 * 128);
}

// Every architecture takes any spec: colour 32 x 32 images, a 1 x 40 x 98 log-mel, CLIP's size.
TEST(EdgeModels, AnySpecSameParametersAfterThePooling) {
  data::SampleSpec colour;
  colour.shape = {3, 32, 32};
  const data::SampleSpec audio = data::audio_spec(data::AudioPreprocess{});
  for (const auto& arch : edge_architectures()) {
    auto grey = make_edge_model(arch.name, data::default_image_spec(), 32);
    for (const auto& spec : {colour, audio}) {
      auto model = make_edge_model(arch.name, spec, 32);
      EXPECT_EQ(model->input_shape(), spec.shape);
      // Only the first convolution sees the channels; the head sees the pooled grid.
      const int64_t first_conv_extra = (spec.shape.channels - 1) * 9 *
                                       (arch.name == "tiny-cnn" ? 16 : 32);
      EXPECT_EQ(model->parameter_count(), grey->parameter_count() + first_conv_extra) << arch.name;
      std::vector<float> in(static_cast<size_t>(2 * spec.shape.numel()), 0.3f);
      std::vector<float> out(2 * 32);
      model->embed(in.data(), 2, out.data());
      double norm = 0;
      for (int k = 0; k < 32; ++k) norm += out[k] * out[k];
      EXPECT_NEAR(norm, 1.0, 1e-4) << arch.name;
    }
  }
  // Multiply-adds grow with the input: the tiny CNN's two convolutions at 40 x 98.
  auto tiny = make_edge_model("tiny-cnn", audio, 128);
  EXPECT_EQ(tiny->multiply_adds(),
            40 * 98 * 16 * 9 + 20 * 49 * 32 * 144 + 1568 * 64 + 64 * 128);
}

TEST(Student, ArtifactCarriesTheSpec) {
  auto dir = temp_dir("spec");
  data::SampleSpec spec;
  spec.shape = {3, 32, 32};
  spec.mean = {0.5f, 0.5f, 0.5f};
  spec.std = {0.25f, 0.25f, 0.25f};
  auto model = make_edge_model("tiny-cnn", spec, 8);
  TextPool pool(8);
  pool.set("a", {1, 0, 0, 0, 0, 0, 0, 0});
  pool.set("b", {0, 1, 0, 0, 0, 0, 0, 0});
  save_student(dir / "s.pt", *model, pool, json::object());
  auto loaded = load_student(dir / "s.pt");
  EXPECT_EQ(loaded.encoder->spec(), spec);
  EXPECT_EQ(loaded.meta.at("spec"), data::to_json(spec));
  // Normalization is part of the model: the same [0, 1] input embeds the same after loading.
  std::vector<float> in(3 * 32 * 32, 0.7f), a(8), b(8);
  model->embed(in.data(), 1, a.data());
  loaded.encoder->embed(in.data(), 1, b.data());
  for (int k = 0; k < 8; ++k) EXPECT_NEAR(a[k], b[k], 1e-5);
  fs::remove_all(dir);
}

TEST(Student, SaveLoadRoundTripGivesTheSameEmbeddings) {
  auto dir = temp_dir("student");
  auto model = make_edge_model("mobilenet", data::default_image_spec(), 32, 5);
  TextPool pool(32);
  std::vector<float> v(32, 0.0f);
  v[0] = 1;
  pool.set("a", v);
  v[1] = 2;
  pool.set("b", v);
  save_student(dir / "s.pt", *model, pool, {{"note", "hello"}, {"version", 7}});
  auto loaded = load_student(dir / "s.pt");
  EXPECT_EQ(loaded.encoder->arch(), "mobilenet");
  EXPECT_EQ(loaded.meta["note"], "hello");
  EXPECT_EQ(loaded.meta["version"], 7);
  EXPECT_EQ(loaded.pool.names(), pool.names());
  auto images = ramp_images(2);
  std::vector<float> a(64), b(64);
  model->embed(images.data(), 2, a.data());
  loaded.encoder->embed(images.data(), 2, b.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5);
  fs::remove_all(dir);
}

TEST(Student, CorruptOrForeignFilesAreRejected) {
  auto dir = temp_dir("corrupt");
  std::ofstream(dir / "junk.pt") << "not a torch archive";
  EXPECT_THROW(load_student(dir / "junk.pt"), Error);
  EXPECT_THROW(load_student(dir / "missing.pt"), Error);
  auto model = make_edge_model("tiny-cnn", data::default_image_spec(), 16);
  TextPool pool(16);
  pool.set("a", std::vector<float>(16, 1.0f));
  save_student(dir / "ok.pt", *model, pool, {});
  // A truncated download: the archive no longer reads. (Flipped bytes inside a weight are
  // not caught by the archive: the edge verifies the artifact's SHA-256 for that.)
  fs::resize_file(dir / "ok.pt", fs::file_size(dir / "ok.pt") / 2);
  EXPECT_THROW(load_student(dir / "ok.pt"), Error);
  fs::remove_all(dir);
}

TEST(TextPool, SetNormalisesSubsetAndFileRoundTrip) {
  TextPool pool;
  pool.set("x", {3, 4});
  pool.set("y", {0, 2});
  EXPECT_FLOAT_EQ(pool.vector(0)[0], 0.6f);
  EXPECT_FLOAT_EQ(pool.vector(1)[1], 1.0f);
  EXPECT_THROW(pool.set("z", {1, 2, 3}), Error);
  EXPECT_THROW(pool.set("z", {0, 0}), Error);
  auto sub = pool.subset({"y"});
  EXPECT_EQ(sub.size(), 1u);
  EXPECT_THROW(pool.subset({"nope"}), Error);
  auto dir = temp_dir("pool");
  pool.save(dir / "pool.json");
  auto back = TextPool::load(dir / "pool.json");
  EXPECT_EQ(back.names(), pool.names());
  EXPECT_TRUE(pool.remove("x"));
  EXPECT_FALSE(pool.remove("x"));
  std::ofstream(dir / "bad.json") << R"({"format": "edgefm-pool", "version": 1, "dim": 2,
      "classes": [{"name": "a", "vector": [1, 2, 3]}]})";
  EXPECT_THROW(TextPool::load(dir / "bad.json"), Error);
  fs::remove_all(dir);
}

// A real FM arrives as TorchScript + an embedding-pool file: build both here.
// Found by fuzz/text_pool_fuzzer: a pool file that is not an object, or whose "format" is
// not a string, escaped as nlohmann's type_error instead of an Error naming the file.
TEST(TextPool, MalformedPoolFilesAreErrors) {
  for (const char* text : {"[1,2,3]", R"({"format":7})", "\"pool\"",
                           R"({"format":"edgefm-pool","version":1,"dim":3.5,"classes":[]})",
                           R"({"format":"edgefm-pool","version":1,"dim":1e300,"classes":[]})"}) {
    EXPECT_THROW(models::TextPool::from_json(parse_untrusted_json(text), "pool"), Error) << text;
  }
}

TEST(TorchScriptFm, LoadsAModuleTheTestWrote) {
  auto dir = temp_dir("ts");
  torch::jit::Module module("DemoFm");
  auto weight = torch::zeros({784, 4});
  weight[0][0] = 1;    // embedding axis 0 <- pixel 0
  weight[783][1] = 1;  // embedding axis 1 <- last pixel
  module.register_parameter("weight", weight, false);
  module.define(R"(
    def forward(self, x):
        return torch.flatten(x, 1).matmul(self.weight) + 0.001
  )");
  module.save((dir / "fm.ts").string());
  TextPool pool(4);
  pool.set("first", {1, 0, 0, 0});
  pool.set("last", {0, 1, 0, 0});
  pool.save(dir / "pool.json");

  auto fm = load_torchscript_foundation_model(dir / "fm.ts", dir / "pool.json", data::default_image_spec());
  EXPECT_EQ(fm.image->embedding_dim(), 4);
  EXPECT_EQ(fm.image->parameter_count(), 784 * 4);
  EXPECT_EQ(fm.text, nullptr);
  std::vector<float> images(2 * 784, 0.0f);
  images[0] = 1.0f;           // image 0 lights pixel 0
  images[784 + 783] = 1.0f;   // image 1 lights the last pixel
  std::vector<float> out(8);
  fm.image->embed(images.data(), 2, out.data());
  EXPECT_GT(out[0], 0.99f);
  EXPECT_GT(out[4 + 1], 0.99f);

  TextPool wrong(3);
  wrong.set("a", {1, 0, 0});
  wrong.save(dir / "wrong.json");
  EXPECT_THROW(load_torchscript_foundation_model(dir / "fm.ts", dir / "wrong.json", data::default_image_spec()), Error);
  std::ofstream(dir / "junk.ts") << "junk";
  EXPECT_THROW(load_torchscript_foundation_model(dir / "junk.ts", dir / "pool.json", data::default_image_spec()), Error);
  fs::remove_all(dir);
}

TEST(ReferenceFm, PromptWordsAndUnknownClass) {
  EXPECT_EQ(prompt_words("A photo of a T-Shirt!"),
            (std::vector<std::string>{"a", "photo", "of", "a", "t-shirt"}));
  EXPECT_THROW(load_foundation_model("/nonexistent/fm.pt"), Error);
}

}  // namespace
