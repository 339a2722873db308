#include "net/trace.h"

#include <algorithm>
#include <fstream>
#include <iterator>

#include "common/error.h"

namespace edgefm::net {
namespace {

// Far beyond any real trace (31 years), small enough that sums over repetitions stay exact.
constexpr int64_t kMaxTimestampMs = int64_t{1} << 40;

std::string trim(const std::string& text) {
  const char* blanks = " \t\r";
  size_t first = text.find_first_not_of(blanks);
  if (first == std::string::npos) return "";
  size_t last = text.find_last_not_of(blanks);
  return text.substr(first, last - first + 1);
}

std::string quoted(const std::string& text) {
  constexpr size_t kShown = 40;
  return "'" + (text.size() > kShown ? text.substr(0, kShown) + "..." : text) + "'";
}

// Parses a non-negative decimal integer; returns false for anything else.
bool parse_timestamp(const std::string& text, int64_t& value) {
  if (text.empty()) return false;
  value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
    if (value > kMaxTimestampMs) return false;
  }
  return true;
}

}  // namespace

Trace::Trace(std::string name, std::vector<int64_t> timestamps)
    : name_(std::move(name)), timestamps_(std::move(timestamps)) {}

Trace Trace::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open trace '" + path.string() + "'");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error("cannot read trace '" + path.string() + "'");
  return Trace(path.filename().string(), parse_lines(content, "trace '" + path.string() + "'"));
}

Trace Trace::parse(std::string_view content, std::string name) {
  auto timestamps = parse_lines(content, "trace '" + name + "'");
  return Trace(std::move(name), std::move(timestamps));
}

std::vector<int64_t> Trace::parse_lines(std::string_view content, const std::string& where) {
  std::vector<int64_t> timestamps;
  size_t line_start = 0;
  int64_t line_number = 0;
  while (line_start < content.size()) {
    size_t line_end = content.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = content.size();
    ++line_number;
    const std::string raw(content.substr(line_start, line_end - line_start));
    const std::string text = trim(raw);
    const std::string at = where + " line " + std::to_string(line_number);
    int64_t value = 0;
    if (text.empty()) {
      fail_expected(at, "a millisecond timestamp", "an empty line");
    }
    if (!parse_timestamp(text, value)) {
      fail_expected(at, "a non-negative integer millisecond timestamp (at most " +
                            std::to_string(kMaxTimestampMs) + ")",
                    quoted(text));
    }
    if (!timestamps.empty() && value < timestamps.back()) {
      fail_expected(at, "a timestamp >= " + std::to_string(timestamps.back()) +
                            " (timestamps must not decrease)",
                    std::to_string(value));
    }
    timestamps.push_back(value);
    line_start = line_end + 1;
  }
  if (timestamps.empty()) fail_expected(where, "at least one timestamp line", "an empty file");
  if (timestamps.back() == 0) {
    fail_expected(where + " line " + std::to_string(line_number),
                  "a last timestamp > 0 (the trace repeats with that period)", "0");
  }
  return timestamps;
}

Trace Trace::from_timestamps(std::vector<int64_t> timestamps_ms, std::string name) {
  const std::string where = "trace '" + name + "'";
  if (timestamps_ms.empty()) fail_expected(where, "at least one timestamp", "none");
  for (size_t i = 0; i < timestamps_ms.size(); ++i) {
    const std::string at = where + " entry " + std::to_string(i + 1);
    int64_t value = timestamps_ms[i];
    if (value < 0 || value > kMaxTimestampMs) {
      fail_expected(at, "a timestamp in [0, " + std::to_string(kMaxTimestampMs) + "]",
                    std::to_string(value));
    }
    if (i > 0 && value < timestamps_ms[i - 1]) {
      fail_expected(at, "a timestamp >= " + std::to_string(timestamps_ms[i - 1]) +
                            " (timestamps must not decrease)",
                    std::to_string(value));
    }
  }
  if (timestamps_ms.back() == 0) {
    fail_expected(where, "a last timestamp > 0 (the trace repeats with that period)", "0");
  }
  return Trace(std::move(name), std::move(timestamps_ms));
}

double Trace::mean_rate_bps() const {
  return static_cast<double>(opportunities_per_period()) * kPacketBytes * 8.0 * 1000.0 /
         static_cast<double>(period_ms());
}

double Trace::rate_bps(int64_t begin_ms, int64_t end_ms) const {
  if (end_ms <= begin_ms) {
    fail_expected("trace '" + name_ + "' rate", "an interval with end > begin",
                  "[" + std::to_string(begin_ms) + ", " + std::to_string(end_ms) + ")");
  }
  return static_cast<double>(capacity_bytes(begin_ms, end_ms)) * 8.0 * 1000.0 /
         static_cast<double>(end_ms - begin_ms);
}

int64_t Trace::count_below(int64_t value) const {
  return std::lower_bound(timestamps_.begin(), timestamps_.end(), value) - timestamps_.begin();
}

int64_t Trace::opportunities_before(int64_t t_ms) const {
  if (t_ms <= 0) return 0;
  // Repetition k holds times ts[i] + k*P. With t = q*P + r (0 <= r < P), repetitions
  // k <= q-2 lie entirely below t (every ts[i] <= P), repetition q-1 contributes the ts below
  // P + r and repetition q those below r.
  const int64_t period = period_ms();
  const int64_t q = t_ms / period;
  const int64_t r = t_ms % period;
  int64_t count = count_below(r);
  if (q >= 1) count += count_below(period + r);
  if (q >= 2) count += (q - 1) * opportunities_per_period();
  return count;
}

int64_t Trace::opportunities_between(int64_t begin_ms, int64_t end_ms) const {
  if (end_ms <= begin_ms) return 0;
  return opportunities_before(end_ms) - opportunities_before(begin_ms);
}

int64_t Trace::capacity_bytes(int64_t begin_ms, int64_t end_ms) const {
  return opportunities_between(begin_ms, end_ms) * kPacketBytes;
}

int64_t Trace::opportunity_time_ms(int64_t index) const {
  const int64_t n = opportunities_per_period();
  return timestamps_[static_cast<size_t>(index % n)] + (index / n) * period_ms();
}

int64_t Trace::next_opportunity_ms(int64_t t_ms) const {
  return opportunity_time_ms(opportunities_before(std::max<int64_t>(t_ms, 0)));
}

bool packet_lost(uint64_t seed, int direction, uint64_t packet_index, double probability) {
  if (probability <= 0.0) return false;
  if (probability >= 1.0) return true;
  // splitmix64 over (seed, direction, index): a fixed mixing function, no hidden state.
  uint64_t z = seed * 0x9e3779b97f4a7c15ULL + (static_cast<uint64_t>(direction) << 62) +
               packet_index * 0xd1b54a32d192ed03ULL;
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  const double uniform = static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
  return uniform < probability;
}

}  // namespace edgefm::net
