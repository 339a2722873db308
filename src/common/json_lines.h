#pragma once
// An append-only file of JSON lines (the edge's events log): opening never truncates, so a
// restarted program keeps what earlier runs wrote. Thread-safe; each event is one write(2)
// of one line, flushed to the kernel before write() returns.
#include <filesystem>
#include <mutex>

#include "common/json_io.h"

namespace edgefm {

class JsonLinesLog {
 public:
  // Empty path: a log that drops everything. Creates parent folders. When an earlier run
  // stopped mid-line, a newline is added first so the next event starts on its own line.
  // Throws Error when the file cannot be opened for appending.
  explicit JsonLinesLog(const std::filesystem::path& path);
  ~JsonLinesLog();
  JsonLinesLog(const JsonLinesLog&) = delete;
  JsonLinesLog& operator=(const JsonLinesLog&) = delete;

  // Appends dump_json(event) and a newline; throws Error when the write fails.
  void write(const json& event);

 private:
  void append(const std::string& text);

  std::mutex mutex_;
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace edgefm
