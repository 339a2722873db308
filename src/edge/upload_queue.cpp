#include "edge/upload_queue.h"

#include <sqlite3.h>

#include <chrono>
#include <mutex>

#include "cloud/customization_client.h"
#include "common/checksum.h"
#include "common/error.h"

namespace edgefm::edge {

namespace {

// "EFUQ": marks the file as an EdgeFM upload queue.
constexpr int kApplicationId = 0x45465551;
constexpr int kSchemaVersion = 1;

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Statement {
 public:
  Statement(sqlite3* db, const char* sql, const std::string& context) : db_(db), context_(context) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail("prepare");
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v), "bind");
    return *this;
  }
  Statement& bind(int i, std::string_view text) {
    check(sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT), "bind");
    return *this;
  }
  Statement& bind_blob(int i, std::string_view bytes) {
    check(sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT), "bind");
    return *this;
  }
  // True while a row is available; false when done.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("step");
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  int64_t int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  std::string text(int column) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, column))) : std::string();
  }
  std::string blob(int column) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, column))) : std::string();
  }

 private:
  void check(int rc, const char* what) {
    if (rc != SQLITE_OK) fail(what);
  }
  [[noreturn]] void fail(const char* what) {
    throw Error(context_ + ": SQLite " + what + " failed: " + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string context_;
};

}  // namespace

UploadQueueOptions upload_queue_default_options() { return UploadQueueOptions{}; }

json UploadQueueStats::to_json() const {
  return {{"pending", pending},
          {"pending_bytes", pending_bytes},
          {"enqueued_total", enqueued_total},
          {"duplicates_total", duplicates_total},
          {"acknowledged_total", acknowledged_total}};
}

struct UploadQueue::Impl {
  std::filesystem::path path;
  UploadQueueOptions options;
  std::string context;
  sqlite3* db = nullptr;
  mutable std::mutex mutex;

  void exec(const std::string& sql) const {
    char* message = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message ? message : sqlite3_errmsg(db);
      sqlite3_free(message);
      throw Error(context + ": SQLite failed on '" + sql.substr(0, 60) + "': " + text);
    }
  }

  int64_t pragma_int(const char* name) const {
    Statement s(db, (std::string("PRAGMA ") + name).c_str(), context);
    return s.step() ? s.int64(0) : 0;
  }

  int64_t counter(const char* name) const {
    Statement s(db, "SELECT value FROM counters WHERE name = ?1", context);
    s.bind(1, std::string_view(name));
    return s.step() ? s.int64(0) : 0;
  }

  void add_counter(const char* name, int64_t delta) const {
    Statement s(db,
                "INSERT INTO counters(name, value) VALUES(?1, ?2) "
                "ON CONFLICT(name) DO UPDATE SET value = value + ?2",
                context);
    s.bind(1, std::string_view(name)).bind(2, delta);
    s.step();
  }

  // Runs `body` in an IMMEDIATE transaction (the write lock up front), rolling back on throw.
  template <typename Body>
  auto transaction(Body&& body) const {
    exec("BEGIN IMMEDIATE");
    try {
      if constexpr (std::is_void_v<decltype(body())>) {
        body();
        exec("COMMIT");
      } else {
        auto result = body();
        exec("COMMIT");
        return result;
      }
    } catch (...) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  void open() {
    std::filesystem::create_directories(path.has_parent_path() ? path.parent_path() : ".");
    int rc = sqlite3_open_v2(path.c_str(), &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
      throw Error(context + ": cannot open: " + message);
    }
    sqlite3_busy_timeout(db, options.busy_timeout_ms);
    // A file that is not a database fails here ("file is not a database").
    const int64_t app = pragma_int("application_id");
    bool fresh = false;
    {
      // Finalized before the pragmas below: a live statement holds a read transaction.
      Statement tables(db, "SELECT count(*) FROM sqlite_master", context);
      tables.step();
      fresh = tables.int64(0) == 0;
    }
    if (!fresh && app != kApplicationId) {
      throw Error(context + ": expected an EdgeFM upload queue, got another SQLite database");
    }
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    if (fresh) {
      transaction([&] {
        exec("PRAGMA application_id=" + std::to_string(kApplicationId));
        exec("PRAGMA user_version=" + std::to_string(kSchemaVersion));
        exec("CREATE TABLE IF NOT EXISTS uploads("
             "sequence INTEGER PRIMARY KEY AUTOINCREMENT, "
             "hash TEXT NOT NULL UNIQUE, "
             "bytes BLOB NOT NULL, "
             "metadata TEXT NOT NULL, "
             "enqueued_ms INTEGER NOT NULL, "
             "attempts INTEGER NOT NULL DEFAULT 0, "
             "last_sent_ms INTEGER)");
        exec("CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL)");
      });
    } else if (pragma_int("user_version") != kSchemaVersion) {
      fail_expected(context + " schema version", std::to_string(kSchemaVersion),
                    std::to_string(pragma_int("user_version")));
    }
  }
};

UploadQueue::UploadQueue(const std::filesystem::path& path, UploadQueueOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->options = options;
  impl_->context = "upload queue '" + path.string() + "'";
  try {
    impl_->open();
  } catch (...) {
    if (impl_->db) sqlite3_close(impl_->db);
    impl_->db = nullptr;
    throw;
  }
}

UploadQueue::~UploadQueue() {
  if (impl_ && impl_->db) sqlite3_close(impl_->db);
}

const std::filesystem::path& UploadQueue::path() const { return impl_->path; }

EnqueueResult UploadQueue::enqueue(std::string_view bytes, const json& metadata) {
  if (!metadata.is_object()) {
    fail_expected(impl_->context + " metadata", "a JSON object", metadata.type_name());
  }
  const std::string hash = sha256_hex(bytes);
  std::lock_guard lock(impl_->mutex);
  auto& s = *impl_;
  return s.transaction([&] {
    {
      Statement exists(s.db, "SELECT 1 FROM uploads WHERE hash = ?1", s.context);
      exists.bind(1, hash);
      if (exists.step()) {
        s.add_counter("duplicates_total", 1);
        return EnqueueResult::duplicate;
      }
    }
    if (s.options.max_items > 0 || s.options.max_bytes > 0) {
      Statement size(s.db, "SELECT count(*), coalesce(sum(length(bytes)), 0) FROM uploads", s.context);
      size.step();
      const auto items = static_cast<size_t>(size.int64(0));
      const auto total = static_cast<uint64_t>(size.int64(1));
      if ((s.options.max_items > 0 && items >= s.options.max_items) ||
          (s.options.max_bytes > 0 && total + bytes.size() > s.options.max_bytes)) {
        return EnqueueResult::full;
      }
    }
    Statement insert(s.db,
                     "INSERT INTO uploads(hash, bytes, metadata, enqueued_ms) VALUES(?1, ?2, ?3, ?4)",
                     s.context);
    insert.bind(1, hash).bind_blob(2, bytes).bind(3, metadata.dump()).bind(4, now_unix_ms());
    insert.step();
    s.add_counter("enqueued_total", 1);
    return EnqueueResult::added;
  });
}

std::vector<QueuedUpload> UploadQueue::peek(size_t max_items) const {
  std::lock_guard lock(impl_->mutex);
  auto& s = *impl_;
  Statement select(s.db,
                   "SELECT sequence, hash, bytes, metadata, attempts, enqueued_ms FROM uploads "
                   "ORDER BY sequence LIMIT ?1",
                   s.context);
  select.bind(1, static_cast<int64_t>(std::min<size_t>(max_items, INT64_MAX)));
  std::vector<QueuedUpload> out;
  while (select.step()) {
    QueuedUpload item;
    item.sequence = select.int64(0);
    item.hash = select.text(1);
    item.bytes = select.blob(2);
    item.metadata = json::parse(select.text(3), nullptr, false);
    if (!item.metadata.is_object()) item.metadata = json::object();
    item.attempts = static_cast<int>(select.int64(4));
    item.enqueued_unix_ms = select.int64(5);
    out.push_back(std::move(item));
  }
  return out;
}

void UploadQueue::mark_sent(const std::vector<std::string>& hashes) {
  std::lock_guard lock(impl_->mutex);
  auto& s = *impl_;
  s.transaction([&] {
    Statement update(s.db,
                     "UPDATE uploads SET attempts = attempts + 1, last_sent_ms = ?2 WHERE hash = ?1",
                     s.context);
    const int64_t now = now_unix_ms();
    for (const auto& hash : hashes) {
      update.bind(1, hash).bind(2, now);
      update.step();
      update.reset();
    }
  });
}

size_t UploadQueue::acknowledge(const std::vector<std::string>& hashes) {
  std::lock_guard lock(impl_->mutex);
  auto& s = *impl_;
  return s.transaction([&] {
    Statement remove(s.db, "DELETE FROM uploads WHERE hash = ?1", s.context);
    size_t removed = 0;
    for (const auto& hash : hashes) {
      remove.bind(1, hash);
      remove.step();
      removed += static_cast<size_t>(sqlite3_changes(s.db));
      remove.reset();
    }
    s.add_counter("acknowledged_total", static_cast<int64_t>(removed));
    return removed;
  });
}

bool UploadQueue::contains(const std::string& hash) const {
  std::lock_guard lock(impl_->mutex);
  Statement exists(impl_->db, "SELECT 1 FROM uploads WHERE hash = ?1", impl_->context);
  exists.bind(1, hash);
  return exists.step();
}

size_t UploadQueue::size() const {
  std::lock_guard lock(impl_->mutex);
  Statement count(impl_->db, "SELECT count(*) FROM uploads", impl_->context);
  count.step();
  return static_cast<size_t>(count.int64(0));
}

UploadQueueStats UploadQueue::stats() const {
  std::lock_guard lock(impl_->mutex);
  auto& s = *impl_;
  UploadQueueStats out;
  Statement size(s.db, "SELECT count(*), coalesce(sum(length(bytes)), 0) FROM uploads", s.context);
  size.step();
  out.pending = static_cast<size_t>(size.int64(0));
  out.pending_bytes = static_cast<uint64_t>(size.int64(1));
  out.enqueued_total = static_cast<uint64_t>(s.counter("enqueued_total"));
  out.duplicates_total = static_cast<uint64_t>(s.counter("duplicates_total"));
  out.acknowledged_total = static_cast<uint64_t>(s.counter("acknowledged_total"));
  return out;
}

DrainResult drain_upload_queue(UploadQueue& queue, cloud::CustomizationClient& client,
                               const std::string& device, const models::ImageShape& shape,
                               size_t batch_size, size_t max_batches) {
  if (batch_size == 0) fail_expected("upload batch size", "at least 1", "0");
  DrainResult result;
  while (max_batches == 0 || result.batches < max_batches) {
    auto batch = queue.peek(batch_size);
    if (batch.empty()) break;
    std::vector<std::string> hashes;
    std::vector<std::string_view> samples;
    std::vector<json> metadata;
    for (const auto& item : batch) {
      hashes.push_back(item.hash);
      samples.push_back(item.bytes);
      metadata.push_back(item.metadata);
    }
    queue.mark_sent(hashes);
    auto ack = client.upload_samples(device, samples, shape, metadata);
    ++result.batches;
    result.sent += batch.size();
    result.bytes_sent += static_cast<uint64_t>(ack.call.bytes_sent);
    // Only what the service names is removed: a hash it did not acknowledge stays queued.
    result.acknowledged += queue.acknowledge(ack.acknowledged);
    if (ack.acknowledged.size() != hashes.size() || ack.acknowledged != hashes) {
      throw Error("upload to the customization service: acknowledged hashes differ from the "
                  "samples sent (" + std::to_string(ack.acknowledged.size()) + " for " +
                  std::to_string(hashes.size()) + ")");
    }
  }
  return result;
}

}  // namespace edgefm::edge
