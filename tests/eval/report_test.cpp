#include "eval/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace edgefm::eval {
namespace {

namespace fs = std::filesystem;

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("edgefm_eval_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    unsetenv("EDGEFM_GNUPLOT");
    fs::remove_all(dir_);
  }
  static std::string read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  fs::path dir_;
};

TEST_F(ReportTest, CsvQuotesAndFormatsCells) {
  const auto path = dir_ / "sub" / "table.csv";
  write_csv(path, {"name", "value", "count"},
            {{"plain", 0.25, 3}, {"with, comma", 1e-12, int64_t{-7}}, {"say \"hi\"", 2.0f, 0u}});
  EXPECT_EQ(read(path),
            "name,value,count\n"
            "plain,0.25,3\n"
            "\"with, comma\",1e-12,-7\n"
            "\"say \"\"hi\"\"\",2,0\n");
  EXPECT_THROW(write_csv(path, {"a", "b"}, {{1, 2, 3}}), Error);
}

TEST_F(ReportTest, PlotWritesScriptDataAndPng) {
  const auto png = dir_ / "curve.png";
  const bool ok = plot_lines(png, "accuracy vs offload (edge_fm 'quoted')", "offload ratio",
                             "accuracy",
                             {{"margin", {0, 0.5, 1}, {0.8, 0.9, 0.95}},
                              {"empty", {}, {}},
                              {"energy", {0, 1}, {0.7, 0.96}}});
  const std::string script = read(dir_ / "curve.gp");
  const std::string data = read(dir_ / "curve.dat");
  EXPECT_NE(script.find("index 1"), std::string::npos) << script;  // the empty series is skipped
  EXPECT_NE(data.find("# energy\n0 0.7\n1 0.96\n"), std::string::npos) << data;
  if (system("command -v gnuplot > /dev/null 2>&1") != 0) {
    EXPECT_FALSE(ok);
    GTEST_SKIP() << "gnuplot is not installed: only the failure path was checked";
  }
  ASSERT_TRUE(ok);
  const std::string image = read(png);
  ASSERT_GT(image.size(), 8u);
  EXPECT_EQ(image.substr(1, 3), "PNG");
}

TEST_F(ReportTest, PlotWithoutGnuplotWarnsInsteadOfFailing) {
  setenv("EDGEFM_GNUPLOT", "/nonexistent/gnuplot", 1);
  EXPECT_FALSE(plot_lines(dir_ / "x.png", "t", "x", "y", {{"s", {0, 1}, {1, 2}}}));
  EXPECT_FALSE(fs::exists(dir_ / "x.png"));
  // A gnuplot that fails (here: `false`) is a warning too.
  setenv("EDGEFM_GNUPLOT", "false", 1);
  EXPECT_FALSE(plot_lines(dir_ / "x.png", "t", "x", "y", {{"s", {0, 1}, {1, 2}}}));
  EXPECT_FALSE(plot_lines(dir_ / "y.png", "t", "x", "y", {}));
  EXPECT_THROW(plot_lines(dir_ / "z.png", "t", "x", "y", {{"s", {0, 1}, {1}}}), Error);
}

TEST_F(ReportTest, MarkdownReportAssemblesSections) {
  MarkdownReport report("EdgeFM evaluation");
  report.heading("Accuracy");
  report.paragraph("Edge and FM on the test set.");
  Table table({"model", "accuracy"});
  table.add_row({"edge", "88.10 %"});
  report.table(table);
  report.image("curve", "curve.png");
  const auto path = dir_ / "summary.md";
  report.save(path);
  EXPECT_EQ(read(path),
            "# EdgeFM evaluation\n\n## Accuracy\n\nEdge and FM on the test set.\n\n"
            "| model | accuracy |\n|---|---|\n| edge | 88.10 % |\n\n![curve](curve.png)\n\n");
}

}  // namespace
}  // namespace edgefm::eval
