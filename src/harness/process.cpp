#include "harness/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"

namespace edgefm::harness {

namespace {

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::string self_executable() {
  std::error_code ec;
  auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot resolve /proc/self/exe: " + ec.message());
  return path.string();
}

ChildProcess::ChildProcess(const std::string& program, const std::vector<std::string>& args,
                           const std::string& log_path)
    : log_path_(log_path) {
  command_line_ = std::filesystem::path(program).filename().string();
  for (const auto& a : args) command_line_ += " " + a;
  if (!log_path.empty()) {
    std::filesystem::path p(log_path);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  }

  // Everything the child needs is prepared before fork: only async-signal-safe calls after.
  std::vector<std::string> argv_storage;
  argv_storage.push_back(program);
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int log_fd = log_path.empty()
                         ? ::open("/dev/null", O_WRONLY | O_CLOEXEC)
                         : ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    throw Error("cannot open the log file '" + log_path + "': " + std::strerror(errno));
  }
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    ::close(log_fd);
    throw Error(std::string("pipe: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) {
    const int e = errno;
    ::close(log_fd);
    ::close(exec_pipe[0]);
    ::close(exec_pipe[1]);
    throw Error("cannot start '" + command_line_ + "': fork: " + std::strerror(e));
  }
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);  // the parent is already gone
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    // Signals the parent ignores or handles stay default in the child.
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::execv(program.c_str(), argv.data());
    const int e = errno;
    [[maybe_unused]] ssize_t n = ::write(exec_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(exec_pipe[1]);
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &exec_errno, sizeof exec_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof exec_errno)) {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    status_ = decode_status(status);
    throw Error("cannot start '" + command_line_ + "': exec: " + std::strerror(exec_errno));
  }
}

ChildProcess::~ChildProcess() {
  try {
    stop();
  } catch (...) {
  }
}

std::optional<int> ChildProcess::poll() {
  if (status_ || pid_ <= 0) return status_;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) status_ = decode_status(status);
  return status_;
}

std::optional<int> ChildProcess::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto s = poll()) return s;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int ChildProcess::stop(std::chrono::milliseconds grace) {
  if (auto s = poll()) return *s;
  ::kill(pid_, SIGTERM);
  if (auto s = wait_for(grace)) return *s;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = decode_status(status);
  return *status_;
}

std::string ChildProcess::log_tail(size_t bytes) const {
  std::ifstream in(log_path_, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const auto size = static_cast<size_t>(in.tellg());
  const size_t start = size > bytes ? size - bytes : 0;
  in.seekg(static_cast<std::streamoff>(start));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int wait_for_port_file(ChildProcess& child, const std::filesystem::path& port_file,
                       std::chrono::seconds timeout, const std::function<void()>& check) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (check) check();
    std::ifstream in(port_file);
    int port = 0;
    if (in >> port && port > 0) return port;
    if (auto status = child.poll()) {
      throw Error("'" + child.command_line() + "' exited with status " + std::to_string(*status) +
                  " before listening; its log (" + child.log_path() + ") ends:\n" +
                  child.log_tail());
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error("'" + child.command_line() + "' did not write its port within " +
                  std::to_string(timeout.count()) + " s; its log ends:\n" + child.log_tail());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

size_t LineCounter::count() {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return lines_;
  in.seekg(static_cast<std::streamoff>(offset_));
  char buffer[65536];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    const auto n = static_cast<size_t>(in.gcount());
    lines_ += static_cast<size_t>(std::count(buffer, buffer + n, '\n'));
    offset_ += n;
    if (!in) break;
  }
  return lines_;
}

}  // namespace edgefm::harness
