// The durable upload queue: order, dedupe, persistence, limits, and a real kill -9 of an
// uploading process mid-upload with the customization service as the sink.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "cloud/customization.h"
#include "cloud/customization_client.h"
#include "cloud/linear_model.h"
#include "common/checksum.h"
#include "edge/upload_queue.h"
#include "support/temp_dir.h"

namespace edgefm::edge {
namespace {

namespace fs = std::filesystem;

// A fresh folder, removed with the object.
struct TempDir : testing::TempDir {
  explicit TempDir(const std::string& name) : testing::TempDir("upload-queue", name) {}
};

// Sample i: 784 bytes derived from i (distinct for distinct i).
std::string sample(int i) {
  std::string s(784, '\0');
  uint32_t state = static_cast<uint32_t>(i) * 2654435761u + 12345u;
  for (auto& c : s) {
    state = state * 1664525u + 1013904223u;
    c = static_cast<char>(state >> 24);
  }
  return s;
}

std::vector<std::string> hashes_of(const std::vector<QueuedUpload>& items) {
  std::vector<std::string> out;
  for (const auto& item : items) out.push_back(item.hash);
  return out;
}

TEST(UploadQueue, FifoPeekAndAcknowledge) {
  TempDir dir("fifo");
  UploadQueue queue(dir.path / "queue.db");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(queue.enqueue(sample(i), {{"i", i}}), EnqueueResult::added);
  }
  EXPECT_EQ(queue.size(), 5u);
  auto first = queue.peek(2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].bytes, sample(0));
  EXPECT_EQ(first[0].hash, sha256_hex(sample(0)));
  EXPECT_EQ(first[0].metadata["i"], 0);
  EXPECT_EQ(first[1].bytes, sample(1));
  EXPECT_LT(first[0].sequence, first[1].sequence);
  // Peeking does not remove; marking sent does not either.
  queue.mark_sent(hashes_of(first));
  EXPECT_EQ(queue.size(), 5u);
  auto again = queue.peek(2);
  EXPECT_EQ(hashes_of(again), hashes_of(first));
  EXPECT_EQ(again[0].attempts, 1);

  // Acknowledge out of order: the rest keeps its order.
  EXPECT_EQ(queue.acknowledge({sha256_hex(sample(1)), sha256_hex(sample(3))}), 2u);
  auto rest = queue.peek(10);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[0].bytes, sample(0));
  EXPECT_EQ(rest[1].bytes, sample(2));
  EXPECT_EQ(rest[2].bytes, sample(4));
  // Unknown and repeated acknowledgements change nothing.
  EXPECT_EQ(queue.acknowledge({sha256_hex(sample(1)), sha256_hex("other")}), 0u);
  EXPECT_EQ(queue.size(), 3u);
  auto stats = queue.stats();
  EXPECT_EQ(stats.pending, 3u);
  EXPECT_EQ(stats.pending_bytes, 3u * 784u);
  EXPECT_EQ(stats.enqueued_total, 5u);
  EXPECT_EQ(stats.acknowledged_total, 2u);
}

TEST(UploadQueue, SameContentTwiceKeepsOne) {
  TempDir dir("dedupe");
  UploadQueue queue(dir.path / "queue.db");
  EXPECT_EQ(queue.enqueue(sample(7), {{"first", true}}), EnqueueResult::added);
  EXPECT_EQ(queue.enqueue(sample(7), {{"first", false}}), EnqueueResult::duplicate);
  EXPECT_EQ(queue.enqueue(sample(8)), EnqueueResult::added);
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_TRUE(queue.contains(sha256_hex(sample(7))));
  EXPECT_EQ(queue.peek(1)[0].metadata["first"], true);
  EXPECT_EQ(queue.stats().duplicates_total, 1u);
}

TEST(UploadQueue, ReopenAfterCloseKeepsPendingItemsAndCounters) {
  TempDir dir("reopen");
  const fs::path path = dir.path / "sub" / "queue.db";
  {
    UploadQueue queue(path);
    for (int i = 0; i < 4; ++i) queue.enqueue(sample(i), {{"i", i}});
    queue.acknowledge({sha256_hex(sample(0))});
  }
  UploadQueue queue(path);
  auto items = queue.peek(10);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].bytes, sample(1));
  EXPECT_EQ(items[2].metadata["i"], 3);
  EXPECT_EQ(queue.stats().enqueued_total, 4u);
  EXPECT_EQ(queue.stats().acknowledged_total, 1u);
  EXPECT_EQ(queue.enqueue(sample(2)), EnqueueResult::duplicate);

  // The file is in WAL mode with full synchronous commits.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST(UploadQueue, LimitsRefuseWhenFull) {
  TempDir dir("full");
  UploadQueueOptions options = upload_queue_default_options();
  options.max_items = 2;
  UploadQueue queue(dir.path / "queue.db", options);
  EXPECT_EQ(queue.enqueue(sample(0)), EnqueueResult::added);
  EXPECT_EQ(queue.enqueue(sample(1)), EnqueueResult::added);
  EXPECT_EQ(queue.enqueue(sample(2)), EnqueueResult::full);
  EXPECT_EQ(queue.enqueue(sample(1)), EnqueueResult::duplicate);
  queue.acknowledge({sha256_hex(sample(0))});
  EXPECT_EQ(queue.enqueue(sample(2)), EnqueueResult::added);

  UploadQueueOptions by_bytes = upload_queue_default_options();
  by_bytes.max_bytes = 1000;
  UploadQueue small(dir.path / "small.db", by_bytes);
  EXPECT_EQ(small.enqueue(sample(0)), EnqueueResult::added);
  EXPECT_EQ(small.enqueue(sample(1)), EnqueueResult::full);
}

TEST(UploadQueue, RefusesFilesThatAreNotQueues) {
  TempDir dir("foreign");
  std::ofstream(dir.path / "text.db") << std::string(4096, 'x');
  EXPECT_THROW(UploadQueue(dir.path / "text.db"), Error);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path / "other.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    UploadQueue queue(dir.path / "other.db");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected an EdgeFM upload queue"), std::string::npos);
  }
}

// ---- kill -9 mid-upload ------------------------------------------------------------------

const char* kToken = "t0ken";
const models::ImageShape kShape{1, 28, 28};

// The uploading edge in a child process: enqueue sample after sample and drain the queue in
// batches every few samples, until killed. Never returns.
[[noreturn]] void uploading_child(const fs::path& queue_path, int port_pipe) {
  int port = 0;
  if (::read(port_pipe, &port, sizeof port) != sizeof port) std::_Exit(3);
  try {
    UploadQueue queue(queue_path);
    cloud::ClientOptions options = cloud::client_default_options();
    options.url = "http://127.0.0.1:" + std::to_string(port);
    options.token = kToken;
    cloud::CustomizationClient client(options);
    for (int i = 0; i < 1000; ++i) {
      queue.enqueue(sample(i), {{"i", i}});
      if (i % 5 == 4) drain_upload_queue(queue, client, "edge-1", kShape, 3);
    }
  } catch (...) {
    std::_Exit(4);
  }
  std::_Exit(5);  // the parent kills it long before
}

TEST(UploadQueue, KillNineMidUploadLosesNothingAndTheJobSeesEachSampleOnce) {
  TempDir dir("kill");
  const fs::path queue_path = dir.path / "edge" / "uploads.db";
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // Fork before any thread exists in this process; the child only talks HTTP and SQLite.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[1]);
    uploading_child(queue_path, fds[0]);
  }
  ::close(fds[0]);

  // The sink: the real customization service; it kills the child inside the 7th upload
  // request, after storing its samples and before answering, so that batch is stored but
  // never acknowledged to the edge.
  std::atomic<int> requests{0};
  std::mutex seen_mutex;
  std::vector<std::string> job_hashes;
  cloud::CustomizationOptions options = cloud::customization_default_options();
  options.root = dir.path / "cloud";
  options.sample_shape = kShape;
  options.on_samples_stored = [&](const std::string&, size_t, size_t) {
    if (++requests == 7) ::kill(child, SIGKILL);
  };
  cloud::CustomizationService service(
      options, [&](const cloud::CustomizationJob& job, const cloud::JobProgress&) -> json {
        std::lock_guard lock(seen_mutex);
        job_hashes = job.sample_hashes;
        std::ofstream(job.output) << "artifact";
        return {{"arch", "tiny-cnn"}};
      });
  cloud::ServerOptions server_options = cloud::server_default_options();
  server_options.token = kToken;
  server_options.threads = 4;
  cloud::CloudServer server(
      cloud::make_linear_foundation_model(cloud::linear_model_default_options(), {"a", "b"}),
      server_options, {service.extension()});
  const int port = server.port();
  ASSERT_EQ(::write(fds[1], &port, sizeof port), static_cast<ssize_t>(sizeof port));
  ::close(fds[1]);

  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_EQ(requests.load(), 7);

  // What the edge had committed: the cloud's samples plus what is still queued. The child
  // enqueued sample 0, 1, 2, ... in order, so together they must be exactly a prefix.
  const size_t stored_before = service.sample_count("edge-1");
  UploadQueue queue(queue_path);
  auto pending = queue.peek(1000);
  ASSERT_FALSE(pending.empty());
  std::set<std::string> pending_hashes;
  for (const auto& item : pending) pending_hashes.insert(item.hash);
  size_t in_flight = 0;  // stored by the cloud but not acknowledged to the edge
  for (const auto& item : pending) {
    in_flight += std::filesystem::exists(options.root / "edge-1" / "samples" / (item.hash + ".u8"));
  }
  EXPECT_EQ(in_flight, 3u) << "the killed request's batch of 3";
  const size_t committed = stored_before + pending.size() - in_flight;

  // Restart: drain what is left.
  cloud::ClientOptions client_options = cloud::client_default_options();
  client_options.url = server.url();
  client_options.token = kToken;
  cloud::CustomizationClient client(client_options);
  auto drained = drain_upload_queue(queue, client, "edge-1", kShape, 4);
  EXPECT_EQ(drained.acknowledged, pending.size());
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(service.sample_count("edge-1"), committed);

  // Each committed sample reached the cloud exactly once as a job input.
  auto job = client.submit_job("edge-1", json::object());
  ASSERT_EQ(client.wait_for_job(job["id"], 20)["state"], "done");
  std::lock_guard lock(seen_mutex);
  ASSERT_EQ(job_hashes.size(), committed);
  std::set<std::string> expected;
  for (size_t i = 0; i < committed; ++i) expected.insert(sha256_hex(sample(static_cast<int>(i))));
  EXPECT_EQ(std::set<std::string>(job_hashes.begin(), job_hashes.end()), expected);
  // Drains at samples 4, 9, 14 and 19 send batches of 3 + 2; the 7th request, samples 15-17,
  // was killed while the child had enqueued samples 0-19.
  EXPECT_EQ(committed, 20u);
  EXPECT_EQ(stored_before, 18u);
  server.stop();
  service.stop();
}

}  // namespace
}  // namespace edgefm::edge
