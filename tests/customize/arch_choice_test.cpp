// The accuracy-resource lookup table: budgets that admit one, several or no architecture.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "customize/arch_choice.h"

namespace edgefm::customize {
namespace {

DeviceProfile profile() {
  return DeviceProfile::from_json(json{
      {"format", "edgefm-device-profile"},
      {"version", 1},
      {"device", "test-device"},
      {"architectures",
       {{{"arch", "tiny-cnn"}, {"latency_ms", 0.3}, {"peak_memory_mb", 4.0}},
        {{"arch", "mobilenet"}, {"latency_ms", 1.2}, {"peak_memory_mb", 12.0}},
        {{"arch", "wide-cnn"}, {"latency_ms", 4.0}, {"peak_memory_mb", 48.0}}}}});
}

const std::map<std::string, double> kAccuracy = {
    {"tiny-cnn", 0.80}, {"mobilenet", 0.86}, {"wide-cnn", 0.90}};

ResourceBudget budget(double latency_ms, double memory_mb) {
  ResourceBudget b;
  b.latency_ms = latency_ms;
  b.memory_mb = memory_mb;
  return b;
}

TEST(ArchChoice, BudgetAdmittingOneArchitectureChoosesIt) {
  auto choice = choose_architecture(kAccuracy, profile(), budget(0.5, 100));
  EXPECT_EQ(choice.arch, "tiny-cnn");
  EXPECT_DOUBLE_EQ(choice.accuracy, 0.80);
  ASSERT_EQ(choice.table.size(), 3u);
  EXPECT_TRUE(choice.table[0].fits());
  EXPECT_FALSE(choice.table[1].within_latency);
  EXPECT_TRUE(choice.table[1].within_memory);
  EXPECT_FALSE(choice.table[2].fits());
}

TEST(ArchChoice, BudgetAdmittingSeveralChoosesTheMostAccurate) {
  EXPECT_EQ(choose_architecture(kAccuracy, profile(), budget(2.0, 100)).arch, "mobilenet");
  EXPECT_EQ(choose_architecture(kAccuracy, profile(), ResourceBudget{}).arch, "wide-cnn");
  // Memory binds even when latency would admit every architecture.
  EXPECT_EQ(choose_architecture(kAccuracy, profile(), budget(10.0, 20)).arch, "mobilenet");
  EXPECT_EQ(architectures_within(profile(), budget(2.0, 100)),
            (std::vector<std::string>{"tiny-cnn", "mobilenet"}));
}

TEST(ArchChoice, TheChoiceChangesWithTheLatencyBudget) {
  const auto p = profile();
  const std::string tight = choose_architecture(kAccuracy, p, budget(1.0, 64)).arch;
  const std::string loose = choose_architecture(kAccuracy, p, budget(5.0, 64)).arch;
  EXPECT_EQ(tight, "tiny-cnn");
  EXPECT_EQ(loose, "wide-cnn");
}

TEST(ArchChoice, BudgetOnTheBoundaryAdmits) {
  EXPECT_EQ(choose_architecture(kAccuracy, profile(), budget(1.2, 12.0)).arch, "mobilenet");
}

TEST(ArchChoice, NoArchitectureFitsIsAClearError) {
  try {
    choose_architecture(kAccuracy, profile(), budget(0.1, 100));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("latency <= 0.1 ms"), std::string::npos) << what;
    EXPECT_NE(what.find("got none that fits"), std::string::npos) << what;
    EXPECT_NE(what.find("tiny-cnn 0.3 ms 4 MB"), std::string::npos) << what;
  }
  EXPECT_THROW(choose_architecture(kAccuracy, profile(), budget(10, 1)), Error);
  EXPECT_TRUE(architectures_within(profile(), budget(0.1, 100)).empty());
}

TEST(ArchChoice, ArchitecturesWithoutAccuracyAreNotChosen) {
  std::map<std::string, double> partial = {{"tiny-cnn", 0.5}};
  EXPECT_EQ(choose_architecture(partial, profile(), ResourceBudget{}).arch, "tiny-cnn");
  auto table = choose_architecture(partial, profile(), ResourceBudget{}).to_json()["table"];
  EXPECT_TRUE(table[2]["accuracy"].is_null());
  EXPECT_THROW(choose_architecture({}, profile(), ResourceBudget{}), Error);
}

TEST(ArchChoice, TiesGoToTheCheaperArchitecture) {
  std::map<std::string, double> tied = {{"tiny-cnn", 0.9}, {"mobilenet", 0.9}, {"wide-cnn", 0.9}};
  EXPECT_EQ(choose_architecture(tied, profile(), ResourceBudget{}).arch, "tiny-cnn");
}

TEST(ArchChoice, ProfileAndBudgetParsingRejectWhatIsWrong) {
  EXPECT_THROW(DeviceProfile::from_json(json::object()), Error);
  EXPECT_THROW(DeviceProfile::from_json(json{{"architectures", json::array()}}), Error);
  EXPECT_THROW(DeviceProfile::from_json(json{
                   {"architectures", {{{"arch", "tiny-cnn"}, {"latency_ms", -1}, {"peak_memory_mb", 1}}}}}),
               Error);
  EXPECT_THROW(DeviceProfile::from_json(json{{"architectures", {{{"arch", "tiny-cnn"}, {"latency_ms", 1}}}}}),
               Error);
  EXPECT_THROW(DeviceProfile::from_json(json{
                   {"architectures",
                    {{{"arch", "a"}, {"latency_ms", 1}, {"peak_memory_mb", 1}},
                     {{"arch", "a"}, {"latency_ms", 2}, {"peak_memory_mb", 2}}}}}),
               Error);
  EXPECT_THROW(DeviceProfile::from_json(json{{"format", "other"}}), Error);
  EXPECT_THROW(ResourceBudget::from_json(json{{"latency", 2}}), Error);
  EXPECT_THROW(ResourceBudget::from_json(json{{"latency_ms", 0}}), Error);
  auto b = ResourceBudget::from_json(json{{"latency_ms", 2.5}});
  EXPECT_DOUBLE_EQ(b.latency_ms, 2.5);
  EXPECT_TRUE(std::isinf(b.memory_mb));
  EXPECT_EQ(b.to_json(), (json{{"latency_ms", 2.5}}));
}

TEST(ArchChoice, ProfileRoundTripsThroughJson) {
  auto p = profile();
  auto again = DeviceProfile::from_json(p.to_json());
  ASSERT_EQ(again.architectures.size(), 3u);
  EXPECT_EQ(again.device, "test-device");
  EXPECT_EQ(again.architectures[1].arch, "mobilenet");
  EXPECT_DOUBLE_EQ(again.architectures[1].latency_ms, 1.2);
  EXPECT_DOUBLE_EQ(again.architectures[2].peak_memory_mb, 48.0);
  ASSERT_NE(again.find("wide-cnn"), nullptr);
  EXPECT_EQ(again.find("resnet"), nullptr);
}

}  // namespace
}  // namespace edgefm::customize

namespace edgefm::customize {

// Found by fuzz/customization_request_fuzzer: a job request whose profile had a non-string
// "device" escaped as nlohmann's type_error instead of an Error naming the field.
TEST(ArchChoice, ProfileWithANonStringDeviceIsAClearError) {
  json j = {{"device", 7},
            {"architectures", {{{"arch", "tiny-cnn"}, {"latency_ms", 0.3}, {"peak_memory_mb", 4.0}}}}};
  try {
    DeviceProfile::from_json(j);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("field 'device'"), std::string::npos) << e.what();
  }
}

}  // namespace edgefm::customize
