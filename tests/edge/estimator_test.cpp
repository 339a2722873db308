#include "edge/estimator.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace edgefm::edge {
namespace {

EstimatorOptions options_at(double rtt_ms, double uplink_bps) {
  EstimatorOptions o = estimator_default_options();
  o.nominal_rtt_ms = rtt_ms;
  o.nominal_uplink_bps = uplink_bps;
  return o;
}

// A call of `bytes` over a path with this RTT and rate, with `server_ms` spent in the server.
TransferSample transfer(int64_t bytes, double rtt_ms, double uplink_bps, double server_ms = 2.0) {
  return {bytes, rtt_ms + bytes * 8.0 * 1000.0 / uplink_bps + server_ms, server_ms};
}

TEST(NetworkEstimator, StartsAtTheNominalNetwork) {
  NetworkEstimator estimator(options_at(80.0, 5e6));
  NetworkEstimate e = estimator.estimate();
  EXPECT_DOUBLE_EQ(e.rtt_ms, 80.0);
  EXPECT_NEAR(e.uplink_bps, 5e6, 1.0);
  EXPECT_EQ(e.samples, 0u);
  EXPECT_NEAR(estimator.predicted_transfer_ms(1000), 80.0 + 1.6, 1e-6);
}

TEST(NetworkEstimator, PredictsTheTypicalTransferOfASteadyPath) {
  NetworkEstimator estimator(options_at(80.0, 5e6));
  // Same-size requests over a 50 ms path; each waits 0-8 ms for the link (packet timing).
  for (int i = 0; i < 60; ++i) estimator.add({1000, 50.0 + 2.0 * (i % 5) + 3.0, 3.0});
  NetworkEstimate e = estimator.estimate();
  EXPECT_NEAR(e.rtt_ms, 50.0, 1e-9);  // the floor
  EXPECT_NEAR(estimator.predicted_transfer_ms(1000), 54.0, 0.5);  // the median transfer
  // 1000 bytes in the 4 ms above the floor: 2 Mbit/s effective.
  EXPECT_NEAR(e.uplink_bps, 2e6, 0.1e6);
  EXPECT_EQ(e.samples, 60u);
}

TEST(NetworkEstimator, OneSlowTransferBarelyMovesIt) {
  NetworkEstimator estimator(options_at(80.0, 2e6));
  for (int i = 0; i < 40; ++i) estimator.add(transfer(1200, 80.0, 2e6));
  const NetworkEstimate before = estimator.estimate();
  estimator.add({1200, 80.0 + 2000.0, 2.0});  // one transfer stuck for two seconds
  const NetworkEstimate after = estimator.estimate();
  EXPECT_DOUBLE_EQ(after.rtt_ms, before.rtt_ms);  // a minimum ignores a slow one
  EXPECT_NEAR(after.uplink_bps / before.uplink_bps, 1.0, 0.05);
  // And it is forgotten: the next normal transfers leave the estimate where it was.
  for (int i = 0; i < 5; ++i) estimator.add(transfer(1200, 80.0, 2e6));
  EXPECT_NEAR(estimator.estimate().uplink_bps / before.uplink_bps, 1.0, 0.05);
}

TEST(NetworkEstimator, FollowsASustainedDrop) {
  NetworkEstimator estimator(options_at(80.0, 2e6));
  for (int i = 0; i < 40; ++i) estimator.add(transfer(1200, 80.0, 2e6));
  const double before_ms = estimator.predicted_transfer_ms(1200);
  // The link slows down for good: every transfer now queues 100 ms more.
  for (int i = 0; i < 30; ++i) estimator.add({1200, before_ms + 100.0 + 2.0, 2.0});
  const double after_ms = estimator.predicted_transfer_ms(1200);
  EXPECT_NEAR(after_ms, before_ms + 100.0, 5.0);
  EXPECT_LT(estimator.estimate().uplink_bps, 0.2e6);
}

TEST(NetworkEstimator, FollowsARecovery) {
  NetworkEstimator estimator(options_at(80.0, 1e6));
  for (int i = 0; i < 20; ++i) estimator.add({1000, 80.0 + 500.0, -1.0});  // congested
  EXPECT_GT(estimator.predicted_transfer_ms(1000), 400.0);
  for (int i = 0; i < 30; ++i) estimator.add({1000, 80.0 + 1.0, -1.0});
  EXPECT_LT(estimator.predicted_transfer_ms(1000), 90.0);
}

TEST(NetworkEstimator, RttFloorFollowsALongerPathAfterItsWindow) {
  EstimatorOptions o = options_at(80.0, 5e6);
  o.rtt_window = 8;
  NetworkEstimator estimator(o);
  for (int i = 0; i < 8; ++i) estimator.add({1000, 40.0, 0.0});
  EXPECT_NEAR(estimator.estimate().rtt_ms, 40.0, 1e-9);
  for (int i = 0; i < 7; ++i) estimator.add({1000, 120.0, 0.0});
  EXPECT_NEAR(estimator.estimate().rtt_ms, 40.0, 1e-9);  // one old sample still in the window
  estimator.add({1000, 120.0, 0.0});
  EXPECT_NEAR(estimator.estimate().rtt_ms, 120.0, 1e-9);
}

TEST(NetworkEstimator, CensoredTransfersRaiseTheCostButNotTheRttFloor) {
  NetworkEstimator estimator(options_at(80.0, 5e6));
  for (int i = 0; i < 10; ++i) estimator.add({1000, 80.0 + (i % 3), -1.0});
  // The link stalls: calls are given up after 300 ms, still unfinished.
  for (int i = 0; i < 20; ++i) estimator.add({1000, 300.0, -1.0, true});
  EXPECT_NEAR(estimator.estimate().rtt_ms, 80.0, 1e-9);
  EXPECT_NEAR(estimator.predicted_transfer_ms(1000), 300.0, 10.0);
  // Only censored samples so far: the floor stays the nominal one.
  NetworkEstimator fresh(options_at(80.0, 5e6));
  fresh.add({1000, 500.0, -1.0, true});
  EXPECT_DOUBLE_EQ(fresh.estimate().rtt_ms, 80.0);
  EXPECT_EQ(fresh.estimate().samples, 1u);
}

TEST(NetworkEstimator, ServerTimeIsNotNetworkTime) {
  NetworkEstimator estimator(options_at(80.0, 5e6));
  for (int i = 0; i < 20; ++i) estimator.add({1000, 60.0 + 300.0, 300.0});
  EXPECT_NEAR(estimator.estimate().rtt_ms, 60.0, 1e-9);
}

TEST(NetworkEstimator, IgnoresEmptyOrNonsenseSamples) {
  NetworkEstimator estimator(options_at(80.0, 5e6));
  estimator.add({0, 10.0, 1.0});
  estimator.add({1000, -1.0, 1.0});
  estimator.add({1000, std::numeric_limits<double>::infinity(), 1.0});
  EXPECT_EQ(estimator.estimate().samples, 0u);
  EXPECT_DOUBLE_EQ(estimator.estimate().rtt_ms, 80.0);
}

TEST(NetworkEstimator, RejectsBadOptions) {
  EXPECT_THROW(NetworkEstimator(options_at(80.0, 0.0)), Error);
  EXPECT_THROW(NetworkEstimator(options_at(-1.0, 1e6)), Error);
  EstimatorOptions o = estimator_default_options();
  o.window = 0;
  EXPECT_THROW(NetworkEstimator{o}, Error);
  o = estimator_default_options();
  o.ewma_alpha = 0.0;
  EXPECT_THROW(NetworkEstimator{o}, Error);
}

}  // namespace
}  // namespace edgefm::edge
