#pragma once
// The edge's durable upload queue: samples selected for customization are written
// to an SQLite file before anything is sent, and leave it only when the cloud has
// acknowledged them. WAL journal with synchronous=FULL, so a returned enqueue() or
// acknowledge() survives the process being killed (kill -9) or the machine losing power.
//
// Items are keyed by the SHA-256 of their bytes: enqueueing the same content twice keeps one.
// After a crash mid-upload the same items are sent again; the customization service
// deduplicates them by the same hash, so the job sees each sample once.
//
// One UploadQueue object may be used from several threads; several processes may open the
// same file (SQLite locks it), though one uploader per file is the intended use.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_io.h"
#include "models/encoder.h"

namespace edgefm::cloud {
class CustomizationClient;
}

namespace edgefm::edge {

struct QueuedUpload {
  int64_t sequence = 0;  // arrival order
  std::string hash;      // lower-case hex SHA-256 of `bytes`
  std::string bytes;     // the sample (one uint8 image for the customization service)
  json metadata = json::object();
  int attempts = 0;      // times mark_sent() recorded it
  int64_t enqueued_unix_ms = 0;
};

enum class EnqueueResult { added, duplicate, full };

struct UploadQueueOptions {
  size_t max_items = 0;       // 0: unbounded; past it enqueue() answers `full`
  uint64_t max_bytes = 0;     // 0: unbounded; total bytes of pending samples
  int busy_timeout_ms = 5000; // wait for another connection's lock this long
};
UploadQueueOptions upload_queue_default_options();

struct UploadQueueStats {
  size_t pending = 0;
  uint64_t pending_bytes = 0;
  uint64_t enqueued_total = 0;      // items ever added (duplicates not counted)
  uint64_t duplicates_total = 0;    // enqueue() calls refused as duplicates
  uint64_t acknowledged_total = 0;  // items removed by acknowledge()
  json to_json() const;
};

class UploadQueue {
 public:
  // Opens or creates the queue file (and its folder). Throws Error when the file cannot be
  // opened or is not a queue of this format.
  explicit UploadQueue(const std::filesystem::path& path,
                       UploadQueueOptions options = upload_queue_default_options());
  ~UploadQueue();
  UploadQueue(const UploadQueue&) = delete;
  UploadQueue& operator=(const UploadQueue&) = delete;

  const std::filesystem::path& path() const;

  // Durable when it returns `added`.
  EnqueueResult enqueue(std::string_view bytes, const json& metadata = json::object());
  // Up to `max_items` pending items, oldest first (they stay queued).
  std::vector<QueuedUpload> peek(size_t max_items) const;
  // Records one send attempt of each (bookkeeping: attempts, last send time).
  void mark_sent(const std::vector<std::string>& hashes);
  // Removes the acknowledged items; returns how many were queued. Durable when it returns.
  size_t acknowledge(const std::vector<std::string>& hashes);
  bool contains(const std::string& hash) const;

  size_t size() const;
  bool empty() const { return size() == 0; }
  UploadQueueStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct DrainResult {
  size_t batches = 0;
  size_t sent = 0;          // items sent (a resent item counts again)
  size_t acknowledged = 0;  // items removed from the queue
  uint64_t bytes_sent = 0;  // request bodies
};

// Sends pending items to the customization service in batches of `batch_size` until the
// queue is empty or `max_batches` (0: no limit) batches went: peek, mark_sent, upload,
// acknowledge what the service acknowledged. Every item must be one uint8 image of `shape`.
// A failed upload throws (cloud::RequestError) and leaves the batch queued.
DrainResult drain_upload_queue(UploadQueue& queue, cloud::CustomizationClient& client,
                               const std::string& device, const models::ImageShape& shape,
                               size_t batch_size = 64, size_t max_batches = 0);

}  // namespace edgefm::edge
