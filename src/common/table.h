#pragma once
// The one table printer: aligned text for terminals, Markdown for reports.
#include <ostream>
#include <string>
#include <vector>

namespace edgefm {

class Table {
 public:
  explicit Table(std::vector<std::string> header);
  void add_row(std::vector<std::string> cells);  // throws Error when the width differs
  void print(std::ostream& out) const;           // aligned columns
  std::string markdown() const;
  size_t rows() const { return rows_.size(); }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// printf-style number formatting for table cells: fmt_num(0.91234, 3) == "0.912".
std::string fmt_num(double value, int decimals);
// 0.91234 -> "91.23 %"
std::string fmt_percent(double fraction, int decimals = 2);

}  // namespace edgefm
