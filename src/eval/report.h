#pragma once
// Writing results: CSV tables, PNG line plots (through gnuplot) and Markdown summaries.
#include <concepts>
#include <filesystem>
#include <string>
#include <vector>

#include "common/table.h"

namespace edgefm::eval {

// One CSV cell: text as given, integers as integers, floating point with 10 significant digits.
struct CsvCell {
  std::string text;
  CsvCell(std::string s) : text(std::move(s)) {}
  CsvCell(const char* s) : text(s) {}
  template <typename T>
    requires std::integral<T> || std::floating_point<T>
  CsvCell(T value) : text(format(static_cast<std::conditional_t<std::floating_point<T>, double,
                                                                 long long>>(value))) {}

 private:
  static std::string format(double value);
  static std::string format(long long value);
};

// Writes header + rows as RFC 4180 CSV (cells with a comma, quote or newline are quoted),
// atomically, creating parent folders. Throws Error when a row's width differs from the header.
void write_csv(const std::filesystem::path& path, const std::vector<std::string>& header,
               const std::vector<std::vector<CsvCell>>& rows);

struct Series {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
};

// Draws the series as lines with points into a PNG at `png` by running gnuplot (the
// EDGEFM_GNUPLOT environment variable names another binary). The script (<png stem>.gp) and the
// data (<png stem>.dat, one block per series) stay next to the PNG so the plot can be redrawn
// or restyled by hand. Tries the pngcairo terminal, then png. Never throws for a plotting
// failure (no gnuplot, a gnuplot error): prints a warning to stderr and returns false.
// Throws Error only for a series whose x and y lengths differ.
bool plot_lines(const std::filesystem::path& png, const std::string& title,
                const std::string& xlabel, const std::string& ylabel,
                const std::vector<Series>& series);

// A Markdown summary built piece by piece; tables come from common/table.h.
class MarkdownReport {
 public:
  explicit MarkdownReport(const std::string& title);
  void heading(const std::string& text, int level = 2);
  void paragraph(const std::string& text);
  void table(const Table& table);
  // An image by its path relative to the report.
  void image(const std::string& alt, const std::string& relative_path);
  const std::string& text() const { return text_; }
  void save(const std::filesystem::path& path) const;  // atomic, creates parent folders

 private:
  std::string text_;
};

}  // namespace edgefm::eval
