#include "cloud/batcher.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace edgefm::cloud {

namespace {

int64_t micros_between(BatchClock::time_point from, BatchClock::time_point to) {
  return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

}  // namespace

BatcherOptions batcher_default_options() { return BatcherOptions{}; }

BatchPlan plan_batch(const std::deque<PendingRequest>& queue, BatchClock::time_point now,
                     const BatcherOptions& options, bool draining) {
  BatchPlan plan;
  if (queue.empty()) {
    plan.wake_at = BatchClock::time_point::max();
    return plan;
  }
  const int64_t max_rows = options.max_batch_size;
  if (queue.front().rows >= max_rows) {
    plan.take = 1;
    return plan;
  }
  size_t count = 0;
  int64_t rows = 0;
  while (count < queue.size() && rows + queue[count].rows <= max_rows) {
    rows += queue[count].rows;
    ++count;
  }
  auto deadline = queue.front().arrival + std::chrono::microseconds(options.max_queue_delay_us);
  bool full = rows == max_rows;
  bool next_does_not_fit = count < queue.size();
  if (full || next_does_not_fit || draining || now >= deadline) {
    plan.take = count;
    return plan;
  }
  plan.wake_at = deadline;
  return plan;
}

DynamicBatcher::DynamicBatcher(BatchFunction function, int64_t input_width,
                               int64_t output_width, BatcherOptions options,
                               BatchObserver observer)
    : function_(std::move(function)),
      input_width_(input_width),
      output_width_(output_width),
      options_(options),
      observer_(std::move(observer)) {
  if (options_.max_batch_size < 1) {
    fail_expected("batcher max_batch_size", "at least 1", std::to_string(options_.max_batch_size));
  }
  if (options_.max_queue_delay_us < 0) {
    fail_expected("batcher max_queue_delay_us", "0 or more",
                  std::to_string(options_.max_queue_delay_us));
  }
  if (options_.workers < 1) {
    fail_expected("batcher workers", "at least 1", std::to_string(options_.workers));
  }
  if (input_width_ < 1 || output_width_ < 1) {
    fail_expected("batcher row widths", "at least 1 float in and out",
                  std::to_string(input_width_) + " in, " + std::to_string(output_width_) + " out");
  }
  if (!function_) throw Error("batcher: the batch function is empty");
  stats_.batches_by_rows.assign(static_cast<size_t>(options_.max_batch_size) + 1, 0);
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

DynamicBatcher::~DynamicBatcher() { stop(); }

std::future<BatchResult> DynamicBatcher::submit(std::vector<float> inputs) {
  if (inputs.empty() || inputs.size() % static_cast<size_t>(input_width_) != 0) {
    fail_expected("batcher submit", "a positive multiple of " + std::to_string(input_width_) +
                                        " floats (rows of the input width)",
                  std::to_string(inputs.size()));
  }
  Pending pending;
  pending.rows = static_cast<int64_t>(inputs.size()) / input_width_;
  pending.inputs = std::move(inputs);
  auto future = pending.promise.get_future();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw Error("batcher: submit after stop()");
    pending.arrival = BatchClock::now();
    queue_plan_.push_back({pending.rows, pending.arrival});
    queue_.push_back(std::move(pending));
  }
  wake_.notify_one();
  return future;
}

void DynamicBatcher::stop_waiting() {
  {
    std::lock_guard lock(mutex_);
    no_waiting_ = true;
  }
  wake_.notify_all();
}

void DynamicBatcher::stop() {
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
  });
}

BatcherStats DynamicBatcher::stats() const {
  std::lock_guard lock(mutex_);
  BatcherStats snapshot = stats_;
  snapshot.queued_requests = static_cast<int64_t>(queue_.size());
  return snapshot;
}

void DynamicBatcher::worker_loop() {
  std::unique_lock lock(mutex_);
  while (true) {
    if (queue_.empty()) {
      if (stopping_) return;
      wake_.wait(lock);
      continue;
    }
    BatchPlan plan =
        plan_batch(queue_plan_, BatchClock::now(), options_, stopping_ || no_waiting_);
    if (plan.take == 0) {
      wake_.wait_until(lock, plan.wake_at);
      continue;
    }
    std::vector<Pending> batch;
    batch.reserve(plan.take);
    for (size_t i = 0; i < plan.take; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
      queue_plan_.pop_front();
    }
    // Another worker may take what is left while this one computes.
    if (!queue_.empty()) wake_.notify_one();
    lock.unlock();
    run_batch(batch);
    lock.lock();
  }
}

void DynamicBatcher::run_batch(std::vector<Pending>& batch) {
  const auto start = BatchClock::now();
  std::vector<int64_t> queue_us;
  queue_us.reserve(batch.size());
  int64_t rows = 0;
  for (const auto& p : batch) {
    queue_us.push_back(micros_between(p.arrival, start));
    rows += p.rows;
  }
  const int64_t max_rows = options_.max_batch_size;
  try {
    std::vector<float> outputs(static_cast<size_t>(rows * output_width_));
    int64_t largest_chunk = 0;
    if (batch.size() == 1) {
      // Alone: run in chunks of at most max_batch_size rows (one chunk unless oversized).
      const float* in = batch.front().inputs.data();
      for (int64_t done = 0; done < rows; done += max_rows) {
        int64_t chunk = std::min(max_rows, rows - done);
        auto chunk_start = BatchClock::now();
        function_(in + done * input_width_, chunk, outputs.data() + done * output_width_);
        int64_t compute = micros_between(chunk_start, BatchClock::now());
        largest_chunk = std::max(largest_chunk, chunk);
        record({chunk, 1, compute}, done == 0 ? queue_us : std::vector<int64_t>{});
      }
    } else {
      std::vector<float> inputs(static_cast<size_t>(rows * input_width_));
      size_t at = 0;
      for (const auto& p : batch) {
        std::memcpy(inputs.data() + at, p.inputs.data(), p.inputs.size() * sizeof(float));
        at += p.inputs.size();
      }
      function_(inputs.data(), rows, outputs.data());
      largest_chunk = rows;
      record({rows, static_cast<int>(batch.size()), micros_between(start, BatchClock::now())},
             queue_us);
    }
    const int64_t compute_us = micros_between(start, BatchClock::now());
    size_t offset = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      BatchResult result;
      size_t count = static_cast<size_t>(batch[i].rows * output_width_);
      result.outputs.assign(outputs.begin() + static_cast<long>(offset),
                            outputs.begin() + static_cast<long>(offset + count));
      offset += count;
      result.queue_us = queue_us[i];
      result.compute_us = compute_us;
      result.batch_rows = largest_chunk;
      result.batch_requests = static_cast<int>(batch.size());
      batch[i].promise.set_value(std::move(result));
    }
  } catch (...) {
    auto error = std::current_exception();
    for (auto& p : batch) p.promise.set_exception(error);
  }
}

void DynamicBatcher::record(const BatchInfo& info, const std::vector<int64_t>& queue_us) {
  {
    std::lock_guard lock(mutex_);
    stats_.batches += 1;
    stats_.rows += info.rows;
    stats_.max_batch_rows = std::max(stats_.max_batch_rows, info.rows);
    stats_.batches_by_rows[static_cast<size_t>(std::min<int64_t>(info.rows, options_.max_batch_size))] += 1;
    stats_.requests += static_cast<int64_t>(queue_us.size());
    for (int64_t q : queue_us) {
      stats_.queue_us_total += q;
      stats_.queue_us_max = std::max(stats_.queue_us_max, q);
    }
  }
  if (observer_) observer_(info);
}

}  // namespace edgefm::cloud
