// Mahimahi trace parsing, repetition arithmetic, and the deterministic loss decision.
#include <gtest/gtest.h>

#include <atomic>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <unistd.h>

#include "common/error.h"
#include "net/trace.h"

namespace fs = std::filesystem;
using edgefm::Error;
using edgefm::net::kPacketBytes;
using edgefm::net::packet_lost;
using edgefm::net::Trace;

namespace {

fs::path write_temp(const std::string& name, const std::string& content) {
  static std::atomic<int> counter{0};
  fs::path dir = fs::temp_directory_path() /
                 ("edgefm_trace_test_" + std::to_string(::getpid()) + "_" +
                  std::to_string(counter++));
  fs::create_directories(dir);
  fs::path path = dir / name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// The error message of loading `content`, or "" when it loads.
std::string load_error(const std::string& name, const std::string& content) {
  fs::path path = write_temp(name, content);
  try {
    Trace::load(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

fs::path bundled(const std::string& name) { return fs::path(EDGEFM_TRACE_DIR) / name; }

}  // namespace

TEST(Trace, LoadsTimestampsAndPeriod) {
  Trace trace = Trace::load(write_temp("ok.up", "1\n1\n3\r\n5\n"));
  EXPECT_EQ(trace.name(), "ok.up");
  EXPECT_EQ(trace.timestamps_ms(), (std::vector<int64_t>{1, 1, 3, 5}));
  EXPECT_EQ(trace.period_ms(), 5);
  EXPECT_EQ(trace.opportunities_per_period(), 4);
  // 4 packets of 1500 bytes every 5 ms.
  EXPECT_DOUBLE_EQ(trace.mean_rate_bps(), 4 * 1500 * 8 / 0.005);
  // No trailing newline is fine too.
  EXPECT_EQ(Trace::load(write_temp("nonl.up", "2\n4")).opportunities_per_period(), 2);
}

TEST(Trace, ParsesContentInMemoryWithTheFileChecks) {
  Trace trace = Trace::parse("0\n0\n1\n", "mem");
  EXPECT_EQ(trace.name(), "mem");
  EXPECT_EQ(trace.period_ms(), 1);
  // Opportunities at 0, 0, 1, then 1, 1, 2, ...: two lie before 1.
  EXPECT_EQ(trace.opportunities_before(1), 2);
  EXPECT_EQ(trace.opportunity_time_ms(2), 1);
  EXPECT_THROW(Trace::parse("5\n3\n", "mem"), Error);
  EXPECT_THROW(Trace::parse("", "mem"), Error);
}

TEST(Trace, RejectsEmptyFile) {
  std::string message = load_error("empty.up", "");
  EXPECT_NE(message.find("empty.up"), std::string::npos) << message;
  EXPECT_NE(message.find("empty file"), std::string::npos) << message;
}

TEST(Trace, RejectsMissingFile) {
  try {
    Trace::load("/nonexistent/dir/none.up");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("none.up"), std::string::npos) << e.what();
  }
}

TEST(Trace, RejectsNonNumericLinesNamingFileAndLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"1\n2\nabc\n4\n", "line 3"},      // letters
      {"1\n2.5\n4\n", "line 2"},         // a decimal
      {"1\n-3\n4\n", "line 2"},          // negative
      {"12a\n", "line 1"},               // trailing garbage
      {"1\n2 3\n", "line 2"},            // two numbers on a line
      {"1\n\n4\n", "line 2"},            // an empty line in the middle
      {"1\n99999999999999999999\n", "line 2"},  // overflows
  };
  for (const auto& [content, where] : cases) {
    std::string message = load_error("bad.up", content);
    EXPECT_NE(message.find("bad.up"), std::string::npos) << content << " -> " << message;
    EXPECT_NE(message.find(where), std::string::npos) << content << " -> " << message;
    EXPECT_NE(message.find("expected"), std::string::npos) << content << " -> " << message;
  }
}

TEST(Trace, RejectsDecreasingTimestamps) {
  std::string message = load_error("dec.up", "1\n5\n5\n4\n8\n");
  EXPECT_NE(message.find("dec.up' line 4"), std::string::npos) << message;
  EXPECT_NE(message.find(">= 5"), std::string::npos) << message;
  EXPECT_NE(message.find("got 4"), std::string::npos) << message;
}

TEST(Trace, RejectsZeroLengthTrace) {
  std::string message = load_error("zero.up", "0\n0\n");
  EXPECT_NE(message.find("zero.up"), std::string::npos) << message;
  EXPECT_NE(message.find("> 0"), std::string::npos) << message;
  EXPECT_THROW(Trace::from_timestamps({0}), Error);
  EXPECT_THROW(Trace::from_timestamps({}), Error);
  EXPECT_THROW(Trace::from_timestamps({3, 2}), Error);
  EXPECT_THROW(Trace::from_timestamps({-1, 2}), Error);
}

TEST(Trace, RepetitionArithmeticMatchesBruteForce) {
  // Traces that start at 0 (the period boundary holds two opportunities), repeat a timestamp
  // and end with a repeated one.
  std::mt19937 random(7);
  for (int round = 0; round < 30; ++round) {
    std::vector<int64_t> timestamps;
    int64_t t = round % 3 == 0 ? 0 : 1 + static_cast<int64_t>(random() % 3);
    int count = 1 + static_cast<int>(random() % 8);
    for (int i = 0; i < count; ++i) {
      timestamps.push_back(t);
      t += static_cast<int64_t>(random() % 3);
    }
    if (timestamps.back() == 0) timestamps.back() = 1;
    Trace trace = Trace::from_timestamps(timestamps);
    // Every opportunity of the first 6 repetitions, in order.
    std::vector<int64_t> all;
    for (int64_t k = 0; k < 6; ++k) {
      for (int64_t ts : timestamps) all.push_back(ts + k * trace.period_ms());
    }
    for (size_t i = 0; i < all.size(); ++i) {
      ASSERT_EQ(trace.opportunity_time_ms(static_cast<int64_t>(i)), all[i]);
    }
    const int64_t horizon = 4 * trace.period_ms();
    for (int64_t x = 0; x <= horizon; ++x) {
      int64_t below = std::count_if(all.begin(), all.end(), [&](int64_t v) { return v < x; });
      ASSERT_EQ(trace.opportunities_before(x), below) << "x=" << x << " round " << round;
      int64_t next = *std::find_if(all.begin(), all.end(), [&](int64_t v) { return v >= x; });
      ASSERT_EQ(trace.next_opportunity_ms(x), next) << "x=" << x;
    }
    for (int64_t a = 0; a <= horizon; a += 3) {
      for (int64_t b = a; b <= horizon; b += 2) {
        int64_t between = std::count_if(all.begin(), all.end(),
                                        [&](int64_t v) { return v >= a && v < b; });
        ASSERT_EQ(trace.opportunities_between(a, b), between);
        ASSERT_EQ(trace.capacity_bytes(a, b), between * kPacketBytes);
      }
    }
  }
}

TEST(Trace, FixedRateTraceFromTheMahimahiReadme) {
  // "1": one packet per millisecond, 12 Mbit/s.
  Trace trace = Trace::load(write_temp("12mbps.up", "1\n"));
  EXPECT_DOUBLE_EQ(trace.mean_rate_bps(), 12e6);
  // Opportunities at 1, 2, ..., so [0, 1000) holds 999 and (0, 1000] holds 1000.
  EXPECT_EQ(trace.capacity_bytes(0, 1000), 999 * kPacketBytes);
  EXPECT_EQ(trace.capacity_bytes(1, 1001), 1000 * kPacketBytes);
  EXPECT_DOUBLE_EQ(trace.rate_bps(250, 750), 12e6);
  EXPECT_EQ(trace.next_opportunity_ms(0), 1);
  EXPECT_EQ(trace.next_opportunity_ms(5), 5);
}

TEST(Trace, BundledMeanRatesMatchTheReadme) {
  // README.md of the trace folder: file, mean rate in Mbit/s.
  const std::vector<std::pair<std::string, double>> readme = {
      {"ATT-LTE-driving-2016.up", 1.91}, {"ATT-LTE-driving.up", 0.83},
      {"TMobile-LTE-short.up", 13.32},   {"TMobile-UMTS-driving.up", 0.94},
      {"Verizon-EVDO-driving.up", 0.84}, {"Verizon-LTE-short.up", 5.95},
  };
  for (const auto& [name, mbps] : readme) {
    Trace trace = Trace::load(bundled(name));
    EXPECT_NEAR(trace.mean_rate_bps() / 1e6, mbps, 0.006) << name;
    // Over a whole number of repetitions, (0, 2P] = [1, 2P + 1), the windowed rate is the
    // mean rate.
    EXPECT_NEAR(trace.rate_bps(1, 2 * trace.period_ms() + 1), trace.mean_rate_bps(),
                1e-6 * trace.mean_rate_bps())
        << name;
  }
  Trace tmobile = Trace::load(bundled("TMobile-LTE-short.up"));
  EXPECT_EQ(tmobile.opportunities_per_period(), 155381);
  EXPECT_EQ(tmobile.period_ms(), 140000);
}

TEST(LossDecision, SameSeedSamePattern) {
  std::vector<bool> first, again, other_seed, other_direction;
  for (uint64_t n = 0; n < 20000; ++n) {
    first.push_back(packet_lost(42, 0, n, 0.05));
    again.push_back(packet_lost(42, 0, n, 0.05));
    other_seed.push_back(packet_lost(43, 0, n, 0.05));
    other_direction.push_back(packet_lost(42, 1, n, 0.05));
  }
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other_seed);
  EXPECT_NE(first, other_direction);
  // Calling in another order changes nothing: the decision has no hidden state.
  for (uint64_t n = 20000; n-- > 0;) ASSERT_EQ(packet_lost(42, 0, n, 0.05), first[n]);
}

TEST(LossDecision, RateFollowsTheProbability) {
  for (double p : {0.0, 0.01, 0.1, 0.5, 1.0}) {
    int lost = 0;
    const int n = 100000;
    for (int i = 0; i < n; ++i) lost += packet_lost(1, 0, static_cast<uint64_t>(i), p);
    // Deterministic for this seed; the tolerance is about 5 standard deviations.
    EXPECT_NEAR(static_cast<double>(lost) / n, p, 0.005) << "p=" << p;
  }
}
