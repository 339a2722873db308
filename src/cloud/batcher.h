#pragma once
// The dynamic batcher: concurrent callers submit rows (e.g. images) and get a future; a
// worker groups queued requests, in arrival order, into one call of the batch function of
// at most max_batch_size rows, waiting at most max_queue_delay_us after the oldest queued
// request arrived for others to join. A request of more rows than max_batch_size runs
// alone, split into consecutive calls of at most max_batch_size rows, so the batch
// function never sees more than max_batch_size rows.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace edgefm::cloud {

struct BatcherOptions {
  int max_batch_size = 32;            // rows per call of the batch function; 1 = no batching
  int64_t max_queue_delay_us = 2000;  // longest wait of the oldest request for company
  int workers = 1;                    // threads calling the batch function
};
BatcherOptions batcher_default_options();

// inputs: rows x input_width floats; outputs (caller-owned): rows x output_width floats.
using BatchFunction = std::function<void(const float* inputs, int64_t rows, float* outputs)>;

// Called on the worker thread after every call of the batch function.
struct BatchInfo {
  int64_t rows = 0;
  int requests = 0;
  int64_t compute_us = 0;
};
using BatchObserver = std::function<void(const BatchInfo&)>;

struct BatchResult {
  std::vector<float> outputs;  // rows x output_width, in the order submitted
  int64_t queue_us = 0;        // from submit() until its (first) batch started
  int64_t compute_us = 0;      // time in the batch function for the batch(es) that ran it
  int64_t batch_rows = 0;      // rows in that batch (the largest chunk when split)
  int batch_requests = 0;      // requests in that batch
};

struct BatcherStats {
  int64_t batches = 0;
  int64_t requests = 0;
  int64_t rows = 0;
  int64_t max_batch_rows = 0;
  std::vector<int64_t> batches_by_rows;  // [r] = number of batch calls of r rows
  int64_t queue_us_total = 0;
  int64_t queue_us_max = 0;
  int64_t queued_requests = 0;  // waiting now, not yet in a batch

  double mean_batch_rows() const { return batches == 0 ? 0.0 : double(rows) / double(batches); }
  double mean_queue_us() const {
    return requests == 0 ? 0.0 : double(queue_us_total) / double(requests);
  }
};

// The grouping rule, apart from threads and clocks so it can be tested with made-up times.
using BatchClock = std::chrono::steady_clock;
struct PendingRequest {
  int64_t rows = 0;
  BatchClock::time_point arrival;
};
struct BatchPlan {
  size_t take = 0;                  // requests to take from the front now; 0 = wait
  BatchClock::time_point wake_at;   // when take == 0: when to decide again
};
// Take the longest prefix of the queue that fits max_batch_size now when it is full, when
// the next request does not fit, when the oldest has waited max_queue_delay_us, or when
// draining; a front request of max_batch_size rows or more is taken alone.
BatchPlan plan_batch(const std::deque<PendingRequest>& queue, BatchClock::time_point now,
                     const BatcherOptions& options, bool draining);

class DynamicBatcher {
 public:
  // Throws Error for max_batch_size < 1, a negative delay, workers < 1 or a width < 1.
  DynamicBatcher(BatchFunction function, int64_t input_width, int64_t output_width,
                 BatcherOptions options, BatchObserver observer = nullptr);
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // `inputs` holds rows x input_width floats (rows >= 1); throws Error when it does not, or
  // after stop(). The future carries the batch function's exception if it threw.
  std::future<BatchResult> submit(std::vector<float> inputs);

  // From now on batches go without waiting for the queue delay; submit() still works. A
  // server that is shutting down calls this so requests in flight do not wait for company.
  void stop_waiting();

  // Runs everything already queued, then stops the workers. Idempotent.
  void stop();

  BatcherStats stats() const;
  const BatcherOptions& options() const { return options_; }
  int64_t input_width() const { return input_width_; }
  int64_t output_width() const { return output_width_; }

 private:
  struct Pending {
    std::vector<float> inputs;
    int64_t rows = 0;
    BatchClock::time_point arrival;
    std::promise<BatchResult> promise;
  };

  void worker_loop();
  void run_batch(std::vector<Pending>& batch);
  void record(const BatchInfo& info, const std::vector<int64_t>& queue_us);

  BatchFunction function_;
  int64_t input_width_;
  int64_t output_width_;
  BatcherOptions options_;
  BatchObserver observer_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  std::deque<PendingRequest> queue_plan_;  // rows and arrival of queue_, for plan_batch
  bool stopping_ = false;
  bool no_waiting_ = false;
  BatcherStats stats_;
  std::vector<std::thread> workers_;
  std::once_flag stop_once_;
};

}  // namespace edgefm::cloud
