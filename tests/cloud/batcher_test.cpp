// The dynamic batcher: the grouping rule with made-up times, then the threaded component
// with concurrent clients. No test depends on how fast this machine is: timing assertions
// are lower bounds the batcher guarantees or upper bounds of seconds.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "cloud/batcher.h"
#include "common/error.h"

namespace edgefm::cloud {
namespace {

using namespace std::chrono_literals;

BatcherOptions options_of(int max_batch, int64_t delay_us, int workers = 1) {
  BatcherOptions o = batcher_default_options();
  o.max_batch_size = max_batch;
  o.max_queue_delay_us = delay_us;
  o.workers = workers;
  return o;
}

// ---- the grouping rule ------------------------------------------------------------------

const BatchClock::time_point t0{};

std::deque<PendingRequest> queue_of(std::initializer_list<std::pair<int64_t, int64_t>> rows_at_us) {
  std::deque<PendingRequest> q;
  for (auto [rows, at] : rows_at_us) q.push_back({rows, t0 + std::chrono::microseconds(at)});
  return q;
}

TEST(BatchPlan, EmptyQueueWaits) {
  auto plan = plan_batch({}, t0, options_of(4, 1000), false);
  EXPECT_EQ(plan.take, 0u);
  EXPECT_EQ(plan.wake_at, BatchClock::time_point::max());
}

TEST(BatchPlan, LoneRequestWaitsUntilItsDeadlineThenGoes) {
  auto q = queue_of({{1, 0}});
  auto early = plan_batch(q, t0 + 999us, options_of(4, 1000), false);
  EXPECT_EQ(early.take, 0u);
  EXPECT_EQ(early.wake_at, t0 + 1000us);
  EXPECT_EQ(plan_batch(q, t0 + 1000us, options_of(4, 1000), false).take, 1u);
}

TEST(BatchPlan, DeadlineFollowsTheOldestRequest) {
  auto q = queue_of({{1, 100}, {1, 900}});
  auto plan = plan_batch(q, t0 + 1050us, options_of(4, 1000), false);
  EXPECT_EQ(plan.take, 0u);
  EXPECT_EQ(plan.wake_at, t0 + 1100us);
  EXPECT_EQ(plan_batch(q, t0 + 1100us, options_of(4, 1000), false).take, 2u);
}

TEST(BatchPlan, FullBatchGoesAtOnce) {
  auto q = queue_of({{2, 0}, {2, 1}, {1, 2}});
  EXPECT_EQ(plan_batch(q, t0 + 3us, options_of(4, 1000000), false).take, 2u);
}

TEST(BatchPlan, NextRequestThatDoesNotFitClosesTheBatch) {
  auto q = queue_of({{2, 0}, {3, 1}});
  EXPECT_EQ(plan_batch(q, t0 + 2us, options_of(4, 1000000), false).take, 1u);
}

TEST(BatchPlan, OversizedRequestGoesAlone) {
  auto q = queue_of({{9, 0}, {1, 1}});
  EXPECT_EQ(plan_batch(q, t0 + 2us, options_of(4, 1000000), false).take, 1u);
}

TEST(BatchPlan, ZeroDelayNeverWaits) {
  auto q = queue_of({{1, 5}});
  EXPECT_EQ(plan_batch(q, t0 + 5us, options_of(8, 0), false).take, 1u);
}

TEST(BatchPlan, DrainingTakesWhatIsThere) {
  auto q = queue_of({{1, 0}, {1, 1}});
  EXPECT_EQ(plan_batch(q, t0 + 2us, options_of(8, 1000000), true).take, 2u);
}

TEST(BatchPlan, MaxBatchOneIsNoBatching) {
  auto q = queue_of({{1, 0}, {1, 0}, {1, 0}});
  EXPECT_EQ(plan_batch(q, t0, options_of(1, 1000000), false).take, 1u);
}

// ---- the threaded batcher ---------------------------------------------------------------

// out[r] = {sum of row r, first element of row r * 2}: checks rows are not mixed up.
void sum_and_double(const float* in, int64_t rows, float* out, int64_t width) {
  for (int64_t r = 0; r < rows; ++r) {
    float sum = 0;
    for (int64_t k = 0; k < width; ++k) sum += in[r * width + k];
    out[r * 2] = sum;
    out[r * 2 + 1] = in[r * width] * 2;
  }
}

TEST(DynamicBatcher, ConcurrentClientsGetTheirOwnResults) {
  constexpr int64_t width = 3;
  std::atomic<int64_t> largest{0};
  DynamicBatcher batcher(
      [&](const float* in, int64_t rows, float* out) {
        int64_t seen = largest.load();
        while (rows > seen && !largest.compare_exchange_weak(seen, rows)) {
        }
        sum_and_double(in, rows, out, width);
      },
      width, 2, options_of(8, 500, 2));
  constexpr int clients = 8, per_client = 40;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(c);
      for (int i = 0; i < per_client; ++i) {
        int rows = 1 + static_cast<int>(rng() % 11);  // some above max_batch: split
        std::vector<float> in(static_cast<size_t>(rows * width));
        for (auto& v : in) v = static_cast<float>(rng() % 1000);
        auto result = batcher.submit(in).get();
        if (result.outputs.size() != static_cast<size_t>(rows * 2)) {
          ++wrong;
          continue;
        }
        for (int r = 0; r < rows; ++r) {
          float sum = in[r * width] + in[r * width + 1] + in[r * width + 2];
          if (result.outputs[r * 2] != sum || result.outputs[r * 2 + 1] != in[r * width] * 2) ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LE(largest.load(), 8);
  auto stats = batcher.stats();
  EXPECT_EQ(stats.requests, clients * per_client);
  EXPECT_LE(stats.max_batch_rows, 8);
  int64_t calls = 0;
  for (auto n : stats.batches_by_rows) calls += n;
  EXPECT_EQ(calls, stats.batches);
}

// A batch function that blocks its first call until released: requests submitted meanwhile
// queue up, so what the batcher does with a full queue is deterministic.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool entered = false, open = false;
  void pass() {
    std::unique_lock lock(mutex);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
  }
  void wait_entered() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return entered; });
  }
  void release() {
    std::lock_guard lock(mutex);
    open = true;
    cv.notify_all();
  }
};

TEST(DynamicBatcher, QueuedRequestsAreGroupedUpToMaxBatch) {
  Gate gate;
  std::mutex calls_mutex;
  std::vector<int64_t> calls;
  DynamicBatcher batcher(
      [&](const float* in, int64_t rows, float* out) {
        gate.pass();
        {
          std::lock_guard lock(calls_mutex);
          calls.push_back(rows);
        }
        for (int64_t r = 0; r < rows; ++r) out[r] = in[r] + 1;
      },
      1, 1, options_of(4, 0));
  auto first = batcher.submit({100});
  gate.wait_entered();  // the worker is busy with `first`
  std::vector<std::future<BatchResult>> queued;
  for (int i = 0; i < 10; ++i) queued.push_back(batcher.submit({static_cast<float>(i)}));
  gate.release();
  EXPECT_EQ(first.get().outputs, std::vector<float>{101});
  for (int i = 0; i < 10; ++i) {
    auto result = queued[i].get();
    EXPECT_EQ(result.outputs, std::vector<float>{static_cast<float>(i + 1)});
    EXPECT_EQ(result.batch_rows, i < 8 ? 4 : 2);
  }
  EXPECT_EQ(calls, (std::vector<int64_t>{1, 4, 4, 2}));
  auto stats = batcher.stats();
  EXPECT_EQ(stats.batches, 4);
  EXPECT_EQ(stats.batches_by_rows[4], 2);
  EXPECT_DOUBLE_EQ(stats.mean_batch_rows(), 11.0 / 4.0);
}

TEST(DynamicBatcher, OversizedRequestIsSplitIntoMaxBatchCalls) {
  std::vector<int64_t> calls;
  DynamicBatcher batcher(
      [&](const float* in, int64_t rows, float* out) {
        calls.push_back(rows);
        for (int64_t r = 0; r < rows; ++r) out[r] = in[r] * 10;
      },
      1, 1, options_of(4, 0));
  std::vector<float> in(10);
  for (int i = 0; i < 10; ++i) in[i] = static_cast<float>(i);
  auto result = batcher.submit(in).get();
  ASSERT_EQ(result.outputs.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(result.outputs[i], 10.0f * i);
  EXPECT_EQ(calls, (std::vector<int64_t>{4, 4, 2}));
  EXPECT_EQ(result.batch_rows, 4);
  EXPECT_EQ(batcher.stats().max_batch_rows, 4);
}

TEST(DynamicBatcher, LoneRequestWaitsTheQueueDelayAndNoLonger) {
  constexpr int64_t delay_us = 30000;
  DynamicBatcher batcher([](const float* in, int64_t rows, float* out) { out[0] = in[0]; }, 1, 1,
                         options_of(8, delay_us));
  auto start = BatchClock::now();
  auto result = batcher.submit({1}).get();
  auto waited = std::chrono::duration_cast<std::chrono::microseconds>(BatchClock::now() - start);
  EXPECT_GE(result.queue_us, delay_us);  // it waited for company ...
  EXPECT_LT(waited.count(), 5'000'000);  // ... but was not forgotten
  EXPECT_EQ(result.batch_rows, 1);
}

TEST(DynamicBatcher, FullBatchDoesNotWaitForTheDelay) {
  DynamicBatcher batcher(
      [](const float* in, int64_t rows, float* out) {
        for (int64_t r = 0; r < rows; ++r) out[r] = in[r];
      },
      1, 1, options_of(2, 60'000'000));
  auto start = BatchClock::now();
  auto result = batcher.submit({1, 2}).get();  // fills max_batch alone
  EXPECT_LT(BatchClock::now() - start, 30s);
  EXPECT_EQ(result.outputs, (std::vector<float>{1, 2}));
}

TEST(DynamicBatcher, ExceptionsReachEveryCallerAndTheBatcherCarriesOn) {
  std::atomic<bool> fail{true};
  DynamicBatcher batcher(
      [&](const float* in, int64_t rows, float* out) {
        if (fail) throw Error("model exploded");
        out[0] = in[0];
      },
      1, 1, options_of(4, 0));
  auto bad = batcher.submit({1});
  try {
    bad.get();
    FAIL() << "expected the batch function's exception";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "model exploded");
  }
  fail = false;
  EXPECT_EQ(batcher.submit({5}).get().outputs, std::vector<float>{5});
}

TEST(DynamicBatcher, StopRunsWhatIsQueuedThenRefuses) {
  DynamicBatcher batcher([](const float* in, int64_t rows, float* out) {
    for (int64_t r = 0; r < rows; ++r) out[r] = in[r];
  }, 1, 1, options_of(64, 60'000'000));
  std::vector<std::future<BatchResult>> pending;
  for (int i = 0; i < 5; ++i) pending.push_back(batcher.submit({static_cast<float>(i)}));
  batcher.stop();  // does not wait the minute of queue delay
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(pending[i].wait_for(0s), std::future_status::ready);
    EXPECT_EQ(pending[i].get().outputs, std::vector<float>{static_cast<float>(i)});
  }
  EXPECT_THROW(batcher.submit({1}), Error);
  batcher.stop();
}

TEST(DynamicBatcher, StopWaitingReleasesQueuedRequestsAndKeepsAccepting) {
  DynamicBatcher batcher([](const float* in, int64_t rows, float* out) {
    for (int64_t r = 0; r < rows; ++r) out[r] = in[r];
  }, 1, 1, options_of(64, 60'000'000));
  auto queued = batcher.submit({3});
  batcher.stop_waiting();
  EXPECT_EQ(queued.get().outputs, std::vector<float>{3});
  EXPECT_EQ(batcher.submit({4}).get().outputs, std::vector<float>{4});  // no minute's wait
}

TEST(DynamicBatcher, RejectsBadInputsAndOptions) {
  auto identity = [](const float*, int64_t, float*) {};
  DynamicBatcher batcher(identity, 3, 1, options_of(4, 0));
  EXPECT_THROW(batcher.submit({}), Error);
  EXPECT_THROW(batcher.submit({1, 2}), Error);
  EXPECT_THROW(DynamicBatcher(identity, 3, 1, options_of(0, 0)), Error);
  EXPECT_THROW(DynamicBatcher(identity, 3, 1, options_of(4, -1)), Error);
  EXPECT_THROW(DynamicBatcher(identity, 3, 1, options_of(4, 0, 0)), Error);
  EXPECT_THROW(DynamicBatcher(identity, 0, 1, options_of(4, 0)), Error);
}

TEST(DynamicBatcher, ObserverSeesEveryCall) {
  std::atomic<int64_t> rows_seen{0}, calls{0};
  DynamicBatcher batcher(
      [](const float* in, int64_t rows, float* out) {
        for (int64_t r = 0; r < rows; ++r) out[r] = in[r];
      },
      1, 1, options_of(4, 0), [&](const BatchInfo& info) {
        rows_seen += info.rows;
        ++calls;
      });
  batcher.submit(std::vector<float>(10, 1.0f)).get();
  batcher.submit({1}).get();
  batcher.stop();
  EXPECT_EQ(rows_seen.load(), 11);
  EXPECT_EQ(calls.load(), 4);  // 4 + 4 + 2, then 1
}

}  // namespace
}  // namespace edgefm::cloud
