#include "eval/report.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>

#include "common/error.h"
#include "common/json_io.h"

extern char** environ;

namespace edgefm::eval {
namespace {

std::string csv_escape(const std::string& cell) {
  if (cell.find_first_of(",\"\n\r") == std::string::npos) return cell;
  std::string out = "\"";
  for (char c : cell) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// gnuplot single-quoted string: a quote is written twice.
std::string gp_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c == '\n' ? ' ' : c;
  }
  return out + "'";
}

std::string gp_number(double v) {
  if (std::isnan(v)) return "NaN";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.10g", v);
  return buffer;
}

struct RunResult {
  bool ok = false;
  std::string message;
};

// Runs `program script` in the script's folder without a shell; collects its stderr for the
// warning.
RunResult run_gnuplot(const std::string& program, const std::filesystem::path& script) {
  int err_pipe[2];
  if (pipe(err_pipe) != 0) return {false, "cannot create a pipe"};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, err_pipe[0]);
  const std::string folder = std::filesystem::absolute(script).parent_path().string();
  posix_spawn_file_actions_addchdir_np(&actions, folder.c_str());
  const std::string script_text = script.filename().string();
  char* argv[] = {const_cast<char*>(program.c_str()), const_cast<char*>(script_text.c_str()),
                  nullptr};
  pid_t pid = 0;
  const int spawn_error = posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(err_pipe[1]);
  std::string errors;
  if (spawn_error == 0) {
    char buffer[4096];
    ssize_t got;
    while ((got = read(err_pipe[0], buffer, sizeof buffer)) > 0) {
      if (errors.size() < 4000) errors.append(buffer, size_t(got));
    }
  }
  close(err_pipe[0]);
  if (spawn_error != 0) {
    return {false, "cannot run '" + program + "' (" + std::strerror(spawn_error) + ")"};
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {true, ""};
  while (!errors.empty() && (errors.back() == '\n' || errors.back() == ' ')) errors.pop_back();
  return {false, "'" + program + "' failed" + (errors.empty() ? "" : ": " + errors)};
}

}  // namespace

std::string CsvCell::format(double value) { return gp_number(value); }
std::string CsvCell::format(long long value) { return std::to_string(value); }

void write_csv(const std::filesystem::path& path, const std::vector<std::string>& header,
               const std::vector<std::vector<CsvCell>>& rows) {
  std::string text;
  for (size_t c = 0; c < header.size(); ++c) {
    if (c) text += ',';
    text += csv_escape(header[c]);
  }
  text += "\n";
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].size() != header.size()) {
      fail_expected("CSV '" + path.string() + "' row " + std::to_string(r),
                    std::to_string(header.size()) + " cells", std::to_string(rows[r].size()));
    }
    for (size_t c = 0; c < rows[r].size(); ++c) {
      if (c) text += ',';
      text += csv_escape(rows[r][c].text);
    }
    text += "\n";
  }
  write_text_file(path, text);
}

bool plot_lines(const std::filesystem::path& png, const std::string& title,
                const std::string& xlabel, const std::string& ylabel,
                const std::vector<Series>& series) {
  for (const auto& s : series) {
    if (s.x.size() != s.y.size()) {
      fail_expected("plot series '" + s.name + "'", std::to_string(s.x.size()) + " y values",
                    std::to_string(s.y.size()));
    }
  }
  auto warn = [&](const std::string& why) {
    std::cerr << "warning: plot " << png.string() << " not written: " << why << "\n";
    return false;
  };
  std::filesystem::path script = png, data = png;
  script.replace_extension(".gp");
  data.replace_extension(".dat");
  try {
    std::string data_text;
    std::vector<std::string> plots;
    for (const auto& s : series) {
      if (s.x.empty()) continue;  // gnuplot refuses an empty block
      data_text += "# " + s.name + "\n";
      for (size_t i = 0; i < s.x.size(); ++i) {
        data_text += gp_number(s.x[i]) + " " + gp_number(s.y[i]) + "\n";
      }
      data_text += "\n\n";  // gnuplot's block separator: `index` counts these
      plots.push_back(gp_quote(data.filename().string()) + " index " +
                      std::to_string(plots.size()) + " using 1:2 with linespoints title " +
                      gp_quote(s.name));
    }
    if (plots.empty()) return warn("no series has data");
    write_text_file(data, data_text);

    std::error_code ignored;
    std::filesystem::remove(png, ignored);  // a failed run must not leave an old plot behind
    const char* env = std::getenv("EDGEFM_GNUPLOT");
    const std::string program = env && *env ? env : "gnuplot";
    RunResult result;
    for (const char* terminal :
         {"pngcairo size 900,600 noenhanced", "png size 900,600 noenhanced"}) {
      std::ostringstream gp;
      gp << "# Written by edgefm; run `gnuplot " << script.filename().string()
         << "` in this folder to redraw.\n"
         << "set terminal " << terminal << "\n"
         << "set output " << gp_quote(png.filename().string()) << "\n"
         << "set title " << gp_quote(title) << "\n"
         << "set xlabel " << gp_quote(xlabel) << "\n"
         << "set ylabel " << gp_quote(ylabel) << "\n"
         << "set grid\nset key below\n"
         << "plot ";
      for (size_t i = 0; i < plots.size(); ++i) gp << (i ? ", \\\n     " : "") << plots[i];
      gp << "\n";
      write_text_file(script, gp.str());
      result = run_gnuplot(program, script);
      if (result.ok) break;
      if (result.message.rfind("cannot run", 0) == 0) break;  // no gnuplot at all
    }
    if (!result.ok) return warn(result.message);
    if (!std::filesystem::exists(png)) return warn("gnuplot wrote no file");
    return true;
  } catch (const std::exception& e) {
    return warn(e.what());
  }
}

MarkdownReport::MarkdownReport(const std::string& title) { text_ = "# " + title + "\n\n"; }

void MarkdownReport::heading(const std::string& text, int level) {
  text_ += std::string(std::max(1, std::min(level, 6)), '#') + " " + text + "\n\n";
}

void MarkdownReport::paragraph(const std::string& text) { text_ += text + "\n\n"; }

void MarkdownReport::table(const Table& table) { text_ += table.markdown() + "\n"; }

void MarkdownReport::image(const std::string& alt, const std::string& relative_path) {
  text_ += "![" + alt + "](" + relative_path + ")\n\n";
}

void MarkdownReport::save(const std::filesystem::path& path) const { write_text_file(path, text_); }

}  // namespace edgefm::eval
