#include "common/provenance.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>
#include <sstream>

#include "common/threads.h"

#ifndef EDGEFM_VERSION
#define EDGEFM_VERSION "unknown"
#endif

namespace edgefm {
namespace {

std::mutex command_mutex;
std::string recorded_command;  // guarded by command_mutex

std::string quoted(const std::string& arg) {
  if (arg.empty()) return "''";
  bool plain = true;
  for (char c : arg) {
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                std::string_view("-_./=:,+%@").find(c) != std::string_view::npos;
    if (!safe) plain = false;
  }
  if (plain) return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string command_from_proc() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return shell_command_line(args);
}

std::string trimmed(std::string s) {
  const char* space = " \t\"";
  s.erase(0, s.find_first_not_of(space));
  s.erase(s.find_last_not_of(space) + 1);
  return s;
}

// The value after the first line starting with `key` and a separator (':' or '=').
std::string field(const char* path, const std::string& key, char separator) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) != 0) continue;
    auto at = line.find(separator);
    if (at != std::string::npos && trimmed(line.substr(key.size(), at - key.size())).empty()) {
      return trimmed(line.substr(at + 1));
    }
  }
  return "";
}

int processors_in_cpuinfo() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.rfind("processor", 0) == 0;
  return n;
}

}  // namespace

void set_command_line(int argc, char** argv) {
  std::lock_guard<std::mutex> lock(command_mutex);
  recorded_command = shell_command_line(std::vector<std::string>(argv, argv + argc));
}

std::string shell_command_line(const std::vector<std::string>& args) {
  std::string line;
  for (const auto& arg : args) {
    if (!line.empty()) line += ' ';
    line += quoted(arg);
  }
  return line;
}

std::string machine_description() {
  std::vector<std::string> parts;
  std::string cpu = field("/proc/cpuinfo", "model name", ':');
  int cores = processors_in_cpuinfo();
  if (cores == 0) cores = hardware_threads();
  parts.push_back((cpu.empty() ? std::string("unknown CPU") : cpu) + " x" + std::to_string(cores));
  std::string mem_kb = field("/proc/meminfo", "MemTotal", ':');
  if (!mem_kb.empty()) {
    char gib[32];
    std::snprintf(gib, sizeof gib, "%.1f GiB", std::stod(mem_kb) / (1024.0 * 1024.0));
    parts.push_back(gib);
  }
  std::string os = field("/etc/os-release", "PRETTY_NAME", '=');
  if (!os.empty()) parts.push_back(os);
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += ", ";
    out += p;
  }
  return out;
}

std::string edgefm_version() {
#ifdef EDGEFM_GIT_DESCRIBE
  return std::string(EDGEFM_VERSION) + " (" + EDGEFM_GIT_DESCRIBE + ")";
#else
  return EDGEFM_VERSION;
#endif
}

json provenance() {
  std::string command;
  {
    std::lock_guard<std::mutex> lock(command_mutex);
    command = recorded_command;
  }
  if (command.empty()) command = command_from_proc();
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return {{"command", command},
          {"date", date},
          {"machine", machine_description()},
          {"version", edgefm_version()}};
}

}  // namespace edgefm
