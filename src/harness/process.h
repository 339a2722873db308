#pragma once
// A child process of the experiment (the same `edgefm` program with another subcommand):
// started with fork/exec, its stdout and stderr going to a log file, and always cleaned up:
// the destructor stops it (SIGTERM, then SIGKILL after a grace period), and the kernel sends
// it SIGTERM if the parent dies first (PR_SET_PDEATHSIG).
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace edgefm::harness {

class ChildProcess {
 public:
  // Starts `program` with `args` (args[0] is not the program name; it is added). Throws
  // Error when fork or exec fails (an exec failure is reported by the child through a pipe).
  ChildProcess(const std::string& program, const std::vector<std::string>& args,
               const std::string& log_path);
  ~ChildProcess();  // stop(), never throwing
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  // "edgefm serve --fm ..." for messages.
  const std::string& command_line() const { return command_line_; }

  // Reaps the child if it has exited; its exit status (a signal number s reads as 128 + s).
  std::optional<int> poll();
  bool running() { return !poll().has_value(); }
  // Waits up to `timeout` for it to exit; its status, or nothing if it is still running.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  // SIGTERM, up to `grace` for it to exit, then SIGKILL; returns its status. Idempotent.
  int stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

  // The last `bytes` of its log (for error messages).
  std::string log_tail(size_t bytes = 2000) const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string log_path_;
  std::string command_line_;
};

// Waits for the port a child writes to `port_file` (serve and link --port-file). Throws Error
// with the child's log when it exits first or takes longer than `timeout`; `check` (may be
// empty) is called every 50 ms and may throw to give up (e.g. on a signal).
int wait_for_port_file(ChildProcess& child, const std::filesystem::path& port_file,
                       std::chrono::seconds timeout, const std::function<void()>& check = {});

// Counts the lines of a file that another process appends to (a per-sample log), reading
// only what was added since the last call.
class LineCounter {
 public:
  explicit LineCounter(std::filesystem::path path) : path_(std::move(path)) {}
  size_t count();

 private:
  std::filesystem::path path_;
  size_t offset_ = 0;
  size_t lines_ = 0;
};

// The path of this program (/proc/self/exe resolved).
std::string self_executable();

}  // namespace edgefm::harness
