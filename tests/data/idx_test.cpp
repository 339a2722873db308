#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <unistd.h>
#include <fstream>

#include "common/error.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "support/error_of.h"
#include "data/split.h"

namespace fs = std::filesystem;
using namespace edgefm;
using namespace edgefm::data;

namespace {

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("edgefm-idx-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    images_.count = 3;
    images_.rows = 2;
    images_.cols = 2;
    images_.pixels = {0, 1, 2, 3, 10, 11, 12, 13, 250, 251, 252, 255};
    labels_ = {2, 0, 1};
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string raw(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  void write_raw(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary);
    out << bytes;
  }
  void gzip(const fs::path& in, const fs::path& out) {
    auto bytes = raw(in);
    gzFile f = gzopen(out.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  }
  std::string error_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
  IdxImages images_;
  std::vector<uint8_t> labels_;
};

TEST(Idx, ParsesContentInMemory) {
  const std::vector<uint8_t> images = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 7, 9};
  const auto parsed = parse_idx_images(images.data(), images.size(), "mem");
  EXPECT_EQ(parsed.pixels, (std::vector<uint8_t>{7, 9}));
  const std::vector<uint8_t> labels = {0, 0, 8, 1, 0, 0, 0, 2, 4, 5};
  EXPECT_EQ(parse_idx_labels(labels.data(), labels.size(), "mem"), (std::vector<uint8_t>{4, 5}));
  EXPECT_NE(edgefm::testing::error_of(
                [&] { parse_idx_images(images.data(), images.size() - 1, "mem"); })
                .find("IDX images 'mem' is truncated"),
            std::string::npos);
}

TEST_F(IdxTest, RoundTripPlainAndGzipped) {
  write_idx_images(dir_ / "img", images_);
  write_idx_labels(dir_ / "lab", labels_);
  gzip(dir_ / "img", dir_ / "img.gz");
  gzip(dir_ / "lab", dir_ / "lab.gz");
  for (auto [img, lab] : {std::pair{"img", "lab"}, std::pair{"img.gz", "lab.gz"}}) {
    auto d = load_idx_pair(dir_ / img, dir_ / lab, {"a", "b", "c"});
    ASSERT_EQ(d.size(), 3u);
    EXPECT_EQ(d.spec.shape, (TensorShape{1, 2, 2}));
    EXPECT_EQ(d.labels, (std::vector<int>{2, 0, 1}));
    EXPECT_EQ(d.sample(2)[3], 255);
    EXPECT_FLOAT_EQ(d.to_float()[11], 1.0f);
  }
}

TEST_F(IdxTest, WrongMagicNamesFileAndExpectedMagic) {
  write_idx_labels(dir_ / "lab", labels_);
  auto message = error_of([&] { read_idx_images(dir_ / "lab"); });
  EXPECT_NE(message.find((dir_ / "lab").string()), std::string::npos) << message;
  EXPECT_NE(message.find("0x00000803"), std::string::npos) << message;
  EXPECT_NE(message.find("labels file"), std::string::npos) << message;
  write_idx_images(dir_ / "img", images_);
  message = error_of([&] { read_idx_labels(dir_ / "img"); });
  EXPECT_NE(message.find("0x00000801"), std::string::npos) << message;
}

TEST_F(IdxTest, TruncatedImagesAndLabels) {
  write_idx_images(dir_ / "img", images_);
  auto bytes = raw(dir_ / "img");
  write_raw(dir_ / "short", bytes.substr(0, bytes.size() - 1));
  auto message = error_of([&] { read_idx_images(dir_ / "short"); });
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  EXPECT_NE(message.find("12 pixel bytes"), std::string::npos) << message;
  write_raw(dir_ / "header", bytes.substr(0, 10));
  EXPECT_NE(error_of([&] { read_idx_images(dir_ / "header"); }).find("16-byte header"), std::string::npos);

  write_idx_labels(dir_ / "lab", labels_);
  auto lab = raw(dir_ / "lab");
  write_raw(dir_ / "lab-short", lab.substr(0, lab.size() - 2));
  EXPECT_NE(error_of([&] { read_idx_labels(dir_ / "lab-short"); }).find("truncated"), std::string::npos);
}

TEST_F(IdxTest, TruncatedGzipStream) {
  write_idx_images(dir_ / "img", images_);
  gzip(dir_ / "img", dir_ / "img.gz");
  auto bytes = raw(dir_ / "img.gz");
  write_raw(dir_ / "cut.gz", bytes.substr(0, bytes.size() / 2));
  auto message = error_of([&] { read_idx_images(dir_ / "cut.gz"); });
  EXPECT_NE(message.find("gzip"), std::string::npos) << message;
}

// A gzip bomb: the header claims 10 images of 28x28 (7 840 pixel bytes), the stream inflates
// to 200 MB of zeros. Refused once the output passes what the header announces, without
// inflating (or holding) the rest.
TEST_F(IdxTest, GzipBombIsRefusedByItsHeader) {
  const fs::path bomb = dir_ / "bomb-images.gz";
  const fs::path labels_bomb = dir_ / "bomb-labels.gz";
  for (const auto& [path, header] :
       {std::pair{bomb, std::string("\x00\x00\x08\x03\x00\x00\x00\x0a\x00\x00\x00\x1c\x00\x00\x00\x1c", 16)},
        std::pair{labels_bomb, std::string("\x00\x00\x08\x01\x00\x00\x00\x0a", 8)}}) {
    gzFile f = gzopen(path.c_str(), "wb1");
    ASSERT_NE(f, nullptr);
    gzwrite(f, header.data(), static_cast<unsigned>(header.size()));
    const std::string zeros(1 << 20, '\0');
    for (int i = 0; i < 200; ++i) gzwrite(f, zeros.data(), static_cast<unsigned>(zeros.size()));
    gzclose(f);
  }
  ASSERT_LT(fs::file_size(bomb), 1u << 20);
  auto message = error_of([&] { read_idx_images(bomb); });
  EXPECT_NE(message.find("inflates beyond"), std::string::npos) << message;
  EXPECT_NE(message.find("what its header announces"), std::string::npos) << message;
  message = error_of([&] { read_idx_labels(labels_bomb); });
  EXPECT_NE(message.find("inflates beyond"), std::string::npos) << message;
  // A gzipped file of the announced size still reads.
  write_idx_images(dir_ / "img", images_);
  gzip(dir_ / "img", dir_ / "img.gz");
  EXPECT_EQ(read_idx_images(dir_ / "img.gz").pixels, images_.pixels);
  // A little trailing data keeps its own message.
  write_raw(dir_ / "long", raw(dir_ / "img") + "xx");
  gzip(dir_ / "long", dir_ / "long.gz");
  EXPECT_NE(error_of([&] { read_idx_images(dir_ / "long.gz"); }).find("trailing"), std::string::npos);
}

TEST_F(IdxTest, TrailingBytesRejected) {
  write_idx_images(dir_ / "img", images_);
  write_raw(dir_ / "long", raw(dir_ / "img") + "xx");
  EXPECT_NE(error_of([&] { read_idx_images(dir_ / "long"); }).find("trailing"), std::string::npos);
}

TEST_F(IdxTest, CountMismatchNamesBothFiles) {
  write_idx_images(dir_ / "img", images_);
  write_idx_labels(dir_ / "lab", {1, 2});
  auto message = error_of([&] { load_idx_pair(dir_ / "img", dir_ / "lab", {"a", "b", "c"}); });
  EXPECT_NE(message.find("as many labels as images (3)"), std::string::npos) << message;
  EXPECT_NE(message.find("2 labels"), std::string::npos) << message;
  EXPECT_NE(message.find((dir_ / "lab").string()), std::string::npos) << message;
}

TEST_F(IdxTest, LabelOutOfRange) {
  write_idx_images(dir_ / "img", images_);
  write_idx_labels(dir_ / "lab", {0, 1, 7});
  auto message = error_of([&] { load_idx_pair(dir_ / "img", dir_ / "lab", {"a", "b", "c"}); });
  EXPECT_NE(message.find("index 2"), std::string::npos) << message;
  EXPECT_NE(message.find("below 3"), std::string::npos) << message;
}

TEST_F(IdxTest, MissingFile) {
  EXPECT_NE(error_of([&] { read_idx_images(dir_ / "nope"); }).find("cannot open"), std::string::npos);
}

TEST_F(IdxTest, ImplausibleSides) {
  IdxImages zero = images_;
  zero.rows = 0;
  zero.pixels.clear();
  write_idx_images(dir_ / "zero", zero);
  EXPECT_NE(error_of([&] { read_idx_images(dir_ / "zero"); }).find("1..4096"), std::string::npos);
}

TEST_F(IdxTest, DescriptionValidation) {
  write_raw(dir_ / "d.json", R"({"name": "x", "directory": "."})");
  auto message = error_of([&] { load_description(dir_ / "d.json"); });
  EXPECT_NE(message.find("train_images"), std::string::npos) << message;
  write_raw(dir_ / "t.json", R"({"name": "x", "directory": ".", "train_images": "a",
    "train_labels": "b", "test_images": "c", "test_labels": "d", "class_names": ["p", "q"],
    "prompt_templates": ["no slot"]})");
  EXPECT_NE(error_of([&] { load_description(dir_ / "t.json"); }).find("'{}'"), std::string::npos);
  write_raw(dir_ / "bad.json", "{not json");
  EXPECT_NE(error_of([&] { load_description(dir_ / "bad.json"); }).find("not valid JSON"), std::string::npos);
}

TEST(Split, ConfigurationAndStreamOrder) {
  Dataset d;
  d.spec.shape = {1, 1, 1};
  d.class_names = {"a", "b", "c", "d"};
  for (int i = 0; i < 40; ++i) {
    d.labels.push_back(i % 4);
    d.samples.push_back(static_cast<uint8_t>(i));
  }
  Split split;
  split.seen = {0, 1};
  split.order = "shift";
  split.shift_at = 10;
  auto order = stream_order(d, split);
  ASSERT_EQ(order.size(), 40u);
  for (size_t i = 0; i < 10; ++i) EXPECT_TRUE(split.is_seen(d.labels[order[i]]));
  auto sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < 40; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_EQ(seen_indices(d, split).size(), 20u);
  EXPECT_EQ(split.unseen(4), (std::vector<int>{2, 3}));
  EXPECT_THROW(check_split(Split{"x", {0, 9}}, 4), Error);
  EXPECT_THROW(check_split(Split{"x", {0, 1, 2, 3}}, 4), Error);
}

TEST(Split, LoadsBundledConfigs) {
  auto even = load_split(std::string(EDGEFM_SOURCE_DIR) + "/configs/split-even.json");
  EXPECT_EQ(even.seen, (std::vector<int>{0, 2, 4, 6, 8}));
  auto def = load_split(std::string(EDGEFM_SOURCE_DIR) + "/configs/split-default.json");
  EXPECT_EQ(def.seen, default_split().seen);
}

TEST(FashionMnist, DebianCopyLoadsWithClassNames) {
  auto description = fashion_mnist_description();
  if (!fs::exists(description.directory / description.test_images)) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  auto test = load_dataset(description, Part::test, 100);
  EXPECT_EQ(test.size(), 100u);
  EXPECT_EQ(test.spec.shape, (TensorShape{1, 28, 28}));
  EXPECT_EQ(test.class_names.at(9), "ankle boot");
  auto bundled = load_description(std::string(EDGEFM_SOURCE_DIR) + "/configs/fashion-mnist.json");
  EXPECT_EQ(bundled.class_names, description.class_names);
}

}  // namespace
