#include "common/json_lines.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace edgefm {

JsonLinesLog::JsonLinesLog(const std::filesystem::path& path) : path_(path) {
  if (path.empty()) return;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw Error("cannot open '" + path.string() + "' for appending: " + std::strerror(errno));
  }
  // A line cut short by a crash would swallow the first event of this run.
  const off_t size = ::lseek(fd_, 0, SEEK_END);
  if (size > 0) {
    char last = '\n';
    if (::pread(fd_, &last, 1, size - 1) == 1 && last != '\n') append("\n");
  }
}

JsonLinesLog::~JsonLinesLog() {
  if (fd_ >= 0) ::close(fd_);
}

void JsonLinesLog::write(const json& event) {
  if (fd_ < 0) return;
  std::string line = dump_json(event);
  line += '\n';
  std::lock_guard lock(mutex_);
  append(line);
}

void JsonLinesLog::append(const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error("cannot append to '" + path_.string() + "': " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

}  // namespace edgefm
