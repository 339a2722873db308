#pragma once
// Mahimahi packet-delivery traces: one millisecond timestamp a line, each line one
// opportunity for a 1500-byte packet to cross the link; a repeated timestamp means several
// packets in that millisecond. The trace repeats with period = its last timestamp, so the
// opportunities are ts[i] + k * period for every k >= 0 (Mahimahi's mm-link does the same).
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace edgefm::net {

// Bytes one delivery opportunity may carry.
inline constexpr int64_t kPacketBytes = 1500;

class Trace {
 public:
  // Reads a trace file. Throws Error naming the file and the line for an empty file, a line
  // that is not a non-negative integer, a timestamp smaller than the one before, or a trace
  // whose last timestamp is 0 (it must last a nonzero time).
  static Trace load(const std::filesystem::path& path);
  // The same from a trace file's content in memory; `name` appears in error messages.
  static Trace parse(std::string_view content, std::string name = "trace");
  // The same checks on timestamps given in memory; `name` appears in error messages.
  static Trace from_timestamps(std::vector<int64_t> timestamps_ms, std::string name = "trace");

  const std::string& name() const { return name_; }
  const std::vector<int64_t>& timestamps_ms() const { return timestamps_; }
  // Length of one repetition: the last timestamp.
  int64_t period_ms() const { return timestamps_.back(); }
  // Opportunities in one repetition (the number of lines).
  int64_t opportunities_per_period() const { return static_cast<int64_t>(timestamps_.size()); }

  // Mean capacity of the whole trace: lines * 1500 * 8 / period.
  double mean_rate_bps() const;
  // Mean capacity over [begin_ms, end_ms) of the repeating trace (trace time, not link time).
  double rate_bps(int64_t begin_ms, int64_t end_ms) const;

  // Number of opportunities at times < t_ms (t_ms >= 0; the repetition is included). This is
  // also the index of the first opportunity at or after t_ms.
  int64_t opportunities_before(int64_t t_ms) const;
  // Opportunities with time in [begin_ms, end_ms).
  int64_t opportunities_between(int64_t begin_ms, int64_t end_ms) const;
  // Bytes the link can carry in [begin_ms, end_ms): opportunities * 1500.
  int64_t capacity_bytes(int64_t begin_ms, int64_t end_ms) const;
  // Time of opportunity number `index` (0-based, counting through repetitions). Times are
  // non-decreasing in the index.
  int64_t opportunity_time_ms(int64_t index) const;
  // Time of the first opportunity at or after t_ms.
  int64_t next_opportunity_ms(int64_t t_ms) const;

 private:
  Trace(std::string name, std::vector<int64_t> timestamps);
  // The lines of a trace file, checked; `where` ("trace '<file>'") starts error messages.
  static std::vector<int64_t> parse_lines(std::string_view content, const std::string& where);
  // Number of timestamps of one repetition that are < value.
  int64_t count_below(int64_t value) const;

  std::string name_;
  std::vector<int64_t> timestamps_;
};

// Random loss, deterministic: whether packet number `packet_index` of a direction (0 = uplink,
// 1 = downlink) is lost, for a given seed and loss probability. A pure function of its
// arguments (a splitmix64 hash), so the same seed gives the same loss pattern in every run.
bool packet_lost(uint64_t seed, int direction, uint64_t packet_index, double probability);

}  // namespace edgefm::net
