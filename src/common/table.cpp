#include "common/table.h"

#include <algorithm>
#include <cstdio>
#include <iomanip>

#include "common/error.h"

namespace edgefm {

Table::Table(std::vector<std::string> header) : header_(std::move(header)) {}

void Table::add_row(std::vector<std::string> cells) {
  if (cells.size() != header_.size()) {
    fail_expected("table row", std::to_string(header_.size()) + " cells",
                  std::to_string(cells.size()));
  }
  rows_.push_back(std::move(cells));
}

void Table::print(std::ostream& out) const {
  std::vector<size_t> widths(header_.size());
  for (size_t c = 0; c < header_.size(); ++c) {
    widths[c] = header_[c].size();
    for (const auto& row : rows_) widths[c] = std::max(widths[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t c = 0; c < cells.size(); ++c) {
      out << (c ? "  " : "") << std::left << std::setw(static_cast<int>(widths[c])) << cells[c];
    }
    out << "\n";
  };
  line(header_);
  std::vector<std::string> rule;
  for (auto w : widths) rule.emplace_back(w, '-');
  line(rule);
  for (const auto& row : rows_) line(row);
}

std::string Table::markdown() const {
  auto line = [](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (const auto& cell : cells) s += " " + cell + " |";
    return s + "\n";
  };
  std::string s = line(header_);
  s += "|";
  for (size_t c = 0; c < header_.size(); ++c) s += "---|";
  s += "\n";
  for (const auto& row : rows_) s += line(row);
  return s;
}

std::string fmt_num(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

std::string fmt_percent(double fraction, int decimals) {
  return fmt_num(100.0 * fraction, decimals) + " %";
}

}  // namespace edgefm
