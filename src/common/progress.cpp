#include "common/progress.h"

#include <atomic>
#include <cstdio>
#include <unistd.h>

namespace edgefm {
namespace {
std::atomic<bool> g_quiet{false};
}  // namespace

void Progress::set_quiet(bool quiet) { g_quiet = quiet; }

std::string format_duration(double seconds) {
  if (seconds < 0 || seconds != seconds) return "?";
  auto total = static_cast<long long>(seconds + 0.5);
  char buffer[32];
  if (total >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60,
                  total % 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld", total / 60, total % 60);
  }
  return buffer;
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_),
      tty_(::isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() {
  if (!finished_ && tty_ && !g_quiet) std::fputc('\n', stderr);
}

void Progress::update(int64_t done, const std::vector<std::pair<std::string, std::string>>& fields) {
  last_done_ = done;
  auto now = std::chrono::steady_clock::now();
  auto interval = tty_ ? std::chrono::milliseconds(250) : std::chrono::milliseconds(5000);
  if (now - last_print_ < interval) return;
  last_print_ = now;
  print(done, fields, false);
}

void Progress::finish(const std::vector<std::pair<std::string, std::string>>& fields) {
  finished_ = true;
  print(total_ > 0 ? total_ : last_done_, fields, true);
}

void Progress::print(int64_t done, const std::vector<std::pair<std::string, std::string>>& fields,
                     bool final) {
  if (g_quiet) return;
  double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string line = "[" + label_ + "]";
  for (const auto& [name, value] : fields) line += " " + name + " " + value;
  double rate = elapsed > 0 ? done / elapsed : 0;
  char buffer[96];
  if (total_ > 0) {
    std::snprintf(buffer, sizeof buffer, " %lld/%lld (%.0f%%)", static_cast<long long>(done),
                  static_cast<long long>(total_), 100.0 * done / total_);
    line += buffer;
  }
  std::snprintf(buffer, sizeof buffer, " %.0f %s/s", rate, unit_.c_str());
  line += buffer;
  if (final) {
    line += " elapsed " + format_duration(elapsed);
  } else if (total_ > 0 && rate > 0) {
    line += " ETA " + format_duration((total_ - done) / rate);
  }
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace edgefm
