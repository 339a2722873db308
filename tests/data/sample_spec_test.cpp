// The sample spec: JSON round trip, validation, mismatch messages, the 8-bit mapping and
// the normalization that every model applies.
#include <gtest/gtest.h>

#include "support/error_of.h"
#include "common/error.h"
#include "data/sample_spec.h"

namespace edgefm::data {
namespace {

using edgefm::testing::error_of;

TEST(SampleSpec, ImageRoundTripAndDefaults) {
  SampleSpec spec;
  spec.shape = {3, 224, 224};
  spec.image.resize_mode = "longer";
  spec.image.fill = 7;
  spec.mean = {0.5f, 0.4f, 0.3f};
  spec.std = {0.2f, 0.25f, 0.3f};
  const json j = to_json(spec);
  EXPECT_EQ(j.at("datatype"), "UINT8");
  EXPECT_EQ(spec_from_json(j, "t"), spec);
  EXPECT_EQ(spec_from_json(json{{"shape", {1, 28, 28}}}, "t"), default_image_spec());
  EXPECT_EQ(default_image_spec().describe(), "image 1x28x28");
}

TEST(SampleSpec, AudioShapeFollowsItsPreprocessing) {
  const SampleSpec spec = spec_from_json(json{{"modality", "audio"}}, "t");
  EXPECT_EQ(spec.shape, (TensorShape{1, 40, 98}));  // 1 + (16000 - 400) / 160 frames
  EXPECT_EQ(spec_from_json(to_json(spec), "t"), spec);
  AudioPreprocess a;
  a.hop = 320;
  a.mel_bands = 64;
  EXPECT_EQ(audio_spec(a).shape, (TensorShape{1, 64, 49}));
  // A shape that disagrees with the preprocessing is refused, naming what it should be.
  EXPECT_NE(error_of([] { spec_from_json(json{{"modality", "audio"}, {"shape", {1, 40, 100}}}, "t"); })
                .find("1x40x98"),
            std::string::npos);
}

TEST(SampleSpec, RefusesInconsistentSpecsWithTheField) {
  EXPECT_NE(error_of([] { spec_from_json(json{{"modality", "video"}}, "t"); }).find("modality"),
            std::string::npos);
  EXPECT_NE(error_of([] { spec_from_json(json{{"shape", {3, 0, 10}}}, "t"); }).find("height"),
            std::string::npos);
  EXPECT_NE(error_of([] { spec_from_json(json{{"shape", {3, 10}}}, "t"); }).find("[C, H, W]"),
            std::string::npos);
  EXPECT_NE(error_of([] { spec_from_json(json{{"shape", {3, 8, 8}}, {"mean", {0.5}}, {"std", {0.2}}}, "t"); })
                .find("one value per channel"),
            std::string::npos);
  EXPECT_NE(error_of([] { spec_from_json(json{{"shape", {1, 8, 8}}, {"mean", {0.5}}, {"std", {0.0}}}, "t"); })
                .find("std > 0"),
            std::string::npos);
  EXPECT_NE(error_of([] { spec_from_json(json{{"modality", "audio"}, {"audio", {{"n_fft", 8}}}}, "t"); })
                .find("n_fft"),
            std::string::npos);
  EXPECT_NE(error_of([] { spec_from_json(json{{"shape", {1, 8, 8}}, {"image", {{"resize_mode", "zoom"}}}}, "t"); })
                .find("resize_mode"),
            std::string::npos);
  EXPECT_NE(error_of([] { spec_from_json(json::array(), "ctx"); }).find("ctx"), std::string::npos);
}

TEST(SampleSpec, MismatchNamesBothSides) {
  SampleSpec clip;
  clip.shape = {3, 224, 224};
  check_same_spec(clip, "a", clip, "b");
  const auto message = error_of([&] { check_same_spec(clip, "the FM", default_image_spec(), "the student"); });
  EXPECT_NE(message.find("the FM takes samples of image 3x224x224"), std::string::npos) << message;
  EXPECT_NE(message.find("the student takes image 1x28x28"), std::string::npos) << message;
}

TEST(SampleSpec, BytesFloatsAndNormalization) {
  const uint8_t bytes[3] = {0, 51, 255};
  const auto floats = to_unit_floats(bytes, 3);
  EXPECT_FLOAT_EQ(floats[1], 0.2f);
  uint8_t back[3];
  const float values[3] = {-0.5f, 0.2f, 1.5f};
  to_bytes(values, 3, back);
  EXPECT_EQ(back[0], 0);
  EXPECT_EQ(back[1], 51);
  EXPECT_EQ(back[2], 255);

  SampleSpec spec;
  spec.shape = {2, 1, 2};
  spec.mean = {0.5f, 0.0f};
  spec.std = {0.25f, 2.0f};
  float x[4] = {0.5f, 1.0f, 1.0f, 0.0f};  // channel 0: 0.5, 1.0; channel 1: 1.0, 0.0
  apply_normalization(spec, x, 1);
  EXPECT_FLOAT_EQ(x[0], 0.0f);
  EXPECT_FLOAT_EQ(x[1], 2.0f);
  EXPECT_FLOAT_EQ(x[2], 0.5f);
  EXPECT_FLOAT_EQ(x[3], 0.0f);
}

}  // namespace
}  // namespace edgefm::data
