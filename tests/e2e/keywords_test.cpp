// End to end on audio: a small synthesized keywords data set (scripts/make-keywords.sh),
// then the real program: FM training, customization, evaluation with an open-set split of
// seen words, and the edge on the unlabelled WAV files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/json_io.h"

namespace edgefm {
namespace {
namespace fs = std::filesystem;

int run(const std::string& command) { return std::system(command.c_str()); }

TEST(Keywords, SynthesizedAudioThroughTheWholePipeline) {
  const fs::path dir = fs::temp_directory_path() / ("edgefm-keywords-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string src = EDGEFM_SOURCE_DIR, bin = EDGEFM_BIN;
  const fs::path data = dir / "keywords";
  const std::string log = " >> " + (dir / "log.txt").string() + " 2>&1";
  fs::create_directories(dir);
  ASSERT_EQ(run(src + "/scripts/make-keywords.sh --out " + data.string() +
                " --per-word-train 16 --per-word-test 4 --jobs 2" + log),
            0)
      << "see " << dir / "log.txt";
  const std::string description = (data / "keywords.json").string();
  const json desc = read_json_file(description);
  ASSERT_GE(desc.at("class_names").size(), 12u);
  EXPECT_EQ(desc.at("source"), "audio_folder");

  const std::string fm = (dir / "fm.pt").string();
  ASSERT_EQ(run(bin + " fm train --data " + description +
                " --epochs 2 --width 8 --batch-size 64 --out " + fm + log),
            0)
      << "see " << dir / "log.txt";
  const std::string student = (dir / "student.pt").string();
  const std::string seen = (dir / "seen.pt").string();
  const std::string split = src + "/configs/split-keywords.json";
  const std::string customize = bin + " customize --fm " + fm + " --data " + description +
                                " --validation 45 --budget 100% --strategy random --epochs 3";
  ASSERT_EQ(run(customize + " --out " + student + log), 0) << "see " << dir / "log.txt";
  ASSERT_EQ(run(customize + " --split " + split + " --out " + seen + log), 0)
      << "see " << dir / "log.txt";

  const std::string report = (dir / "eval.json").string();
  ASSERT_EQ(run(bin + " eval --fm " + fm + " --student " + student + " --data " + description +
                " --open-set " + split + "=" + seen + " --out-dir " + (dir / "eval").string() +
                " --json " + report + log),
            0)
      << "see " << dir / "log.txt";
  const json r = read_json_file(report);
  // The student takes the audio spec (1 x 40 x 98 log-mel), and so does the FM it came from.
  auto s = r.at("edge");
  EXPECT_EQ(s.at("arch"), "tiny-cnn");
  for (const char* key : {"accuracy", "latency_ms_b1"}) {
    EXPECT_GE(r.at("fm").at(key).get<double>(), 0.0) << key;
  }
  EXPECT_EQ(r.at("test_images").get<int>(), static_cast<int>(desc.at("class_names").size()) * 4);
  // A 1 x 40 x 98 tensor per cloud query.
  EXPECT_EQ(r.at("edgefm").at("network").at("payload_bytes").get<double>(), 40 * 98 + 300);
  const double auroc = r.at("open_set").at("auroc").get<double>();
  EXPECT_GE(auroc, 0.0);
  EXPECT_LE(auroc, 1.0);
  // The same score on an untrained student of the same architecture, for comparison.
  EXPECT_TRUE(r.at("open_set").contains("auroc_untrained"));

  // The edge on unlabelled WAV files (no cloud needed for edge-only).
  const std::string answers = (dir / "answers.jsonl").string();
  ASSERT_EQ(run(bin + " edge --student " + student + " --policy edge-only --rate 0 --input " +
                (data / "test").string() + " --log " + answers + " --json " +
                (dir / "edge.json").string() + " --quiet" + log),
            0)
      << "see " << dir / "log.txt";
  const json edge = read_json_file(dir / "edge.json");
  EXPECT_EQ(edge.at("samples"), r.at("test_images"));
  EXPECT_EQ(edge.at("with_truth").get<int>(), 0);
  std::ifstream lines(answers);
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  EXPECT_NE(json::parse(line).at("file").get<std::string>().find(".wav"), std::string::npos);

  // A live stream: file paths on standard input (one unreadable), answers on stdout.
  const std::string live = (dir / "live.jsonl").string();
  ASSERT_EQ(run("(find " + (data / "test").string() + " -name '*.wav' | sort | head -5; echo " +
                (dir / "missing.wav").string() + ") | " + bin + " edge --student " + student +
                " --policy edge-only --input - --quiet > " + live + " 2>> " +
                (dir / "log.txt").string()),
            0)
      << "see " << dir / "log.txt";
  std::ifstream live_in(live);
  int answered = 0;
  while (std::getline(live_in, line)) {
    const json a = json::parse(line);
    EXPECT_EQ(a.at("route"), "edge");
    EXPECT_NE(a.at("file").get<std::string>().find(".wav"), std::string::npos);
    ++answered;
  }
  EXPECT_EQ(answered, 5);
  std::ifstream log_in(dir / "log.txt");
  const std::string log_text((std::istreambuf_iterator<char>(log_in)), {});
  EXPECT_NE(log_text.find("skipped"), std::string::npos);
  EXPECT_NE(log_text.find("missing.wav"), std::string::npos);

  // The open-set scenario on audio: the cloud with customization, the link and the edge on
  // the keywords stream, a first model from the seen words' history (plumbing only: these
  // models are far too small to recover).
  const fs::path scenario = dir / "scenario";
  ASSERT_EQ(run(bin + " scenario --fm " + fm + " --data " + description + " --split " + split +
                " --out-dir " + scenario.string() + " --trace-dir " + EDGEFM_TRACE_DIR +
                " --history 120 --samples 60 --shift-at 20 --detection-samples 20 --rate 30"
                " --window-s 1 --job-epochs 1 --job-min-new 10 --device-budget-ms 1000"
                " --no-study" + log),
            0)
      << "see " << dir / "log.txt";
  const json results = read_json_file(scenario / "results.json");
  EXPECT_GE(results.at("timeline").size(), 1u);
  EXPECT_EQ(results.at("settings").at("data"), description);
  std::ifstream scenario_answers(scenario / "runs" / "keywords-thirds" / "audit.jsonl");
  ASSERT_TRUE(std::getline(scenario_answers, line));
  EXPECT_NE(json::parse(line).at("file").get<std::string>().find(".wav"), std::string::npos);

  // A data set of another spec cannot meet this FM.
  EXPECT_NE(run(bin + " eval --fm " + fm + " --student " + student + " --test-limit 20" + log), 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace edgefm
