#pragma once
// The one progress reporter: long work (training, distillation, replay) reports through it.
// On a terminal it redraws one line; otherwise (logs, CI) it prints a line every few seconds.
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace edgefm {

class Progress {
 public:
  // `label` prefixes every line, `total` is the number of units (0: unknown), `unit` names
  // them ("img", "samples").
  Progress(std::string label, int64_t total, std::string unit);
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress();

  // Reports `done` units so far, with extra fields ("epoch 2/5", "loss 0.31") shown in order.
  void update(int64_t done, const std::vector<std::pair<std::string, std::string>>& fields = {});
  // Prints the final line (always, even when throttled).
  void finish(const std::vector<std::pair<std::string, std::string>>& fields = {});

  // Silences every reporter in this process (tests, --quiet).
  static void set_quiet(bool quiet);

 private:
  void print(int64_t done, const std::vector<std::pair<std::string, std::string>>& fields,
             bool final);

  std::string label_;
  int64_t total_;
  std::string unit_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
  bool tty_;
  bool finished_ = false;
  int64_t last_done_ = 0;
};

// "1:05" / "12:03:07" for a number of seconds.
std::string format_duration(double seconds);

}  // namespace edgefm
