#include "cli/usage.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>

namespace edgefm::cli {
namespace {

constexpr const char* kNumberValidator = "edgefm-number";

// The value as a finite number, or false.
bool finite_number(const std::string& text, double& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && errno != ERANGE && std::isfinite(value);
}

CLI::Validator number_check(std::string what, std::function<bool(double)> ok) {
  return CLI::Validator(
      [what, ok](std::string& value) -> std::string {
        double x = 0.0;
        if (finite_number(value, x) && ok(x)) return "";
        return "expected " + what + ", got '" + value + "'";
      },
      what, kNumberValidator);
}

std::string format_bound(double x) {
  std::string s = std::to_string(x);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::vector<std::string> option_names(const CLI::App& command) {
  std::vector<std::string> names;
  for (const CLI::Option* opt : command.get_options()) {
    for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
  }
  return names;
}

std::vector<std::string> subcommand_names(CLI::App& command) {
  std::vector<std::string> names;
  for (const CLI::App* sub : command.get_subcommands({})) {
    if (!sub->get_name().empty()) names.push_back(sub->get_name());
  }
  return names;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& names) {
  const std::string near = nearest_name(word, names);
  return near.empty() ? "" : " (did you mean " + near + "?)";
}

}  // namespace

CLI::Validator positive_number() {
  return number_check("a number > 0", [](double x) { return x > 0.0; });
}

CLI::Validator non_negative_number() {
  return number_check("a number >= 0", [](double x) { return x >= 0.0; });
}

CLI::Validator number_in(double low, double high) {
  return number_check("a number in [" + format_bound(low) + ", " + format_bound(high) + "]",
                      [low, high](double x) { return x >= low && x <= high; });
}

CLI::Validator any_number() {
  return number_check("a finite number", [](double) { return true; });
}

void check_numeric_options(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    const std::string type = opt->get_type_name();
    const bool integer = starts_with(type, "INT") || starts_with(type, "UINT");
    if (!integer && !starts_with(type, "FLOAT") && !starts_with(type, "NUMBER")) continue;
    bool checked = false;
    try {
      opt->get_validator(kNumberValidator);
      checked = true;
    } catch (const CLI::OptionNotFound&) {
    }
    if (!checked) opt->check(non_negative_number());
    if (integer) {
      opt->check(CLI::Validator(
          [](std::string& value) -> std::string {
            const size_t digits = value.find_first_not_of("+-") == 1 ? 1 : 0;
            if (value.size() > digits &&
                value.find_first_not_of("0123456789", digits) == std::string::npos) {
              return "";
            }
            return "expected a whole number, got '" + value + "'";
          },
          "", "edgefm-integer"));
    }
  }
  for (CLI::App* sub : app.get_subcommands({})) check_numeric_options(*sub);
}

std::string nearest_name(const std::string& word, const std::vector<std::string>& candidates) {
  // A name that begins with the word (--out for --out-dir) is the likeliest meaning.
  for (const auto& c : candidates) {
    if (word.size() >= 3 && c.size() > word.size() && c.rfind(word, 0) == 0) return c;
  }
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

std::string describe_parse_error(CLI::App& app, const std::vector<std::string>& args,
                                 const CLI::ParseError& error) {
  CLI::App* command = &app;
  std::string path = "edgefm";
  bool expect_subcommand = !app.get_subcommands({}).empty();
  // "<command path>: <text>; see `<command path> --help`"
  auto with_help = [&path](const std::string& text) {
    return path + ": " + text + "; see `" + path + " --help`";
  };
  for (const std::string& token : args) {
    if (token == "--") break;
    if (starts_with(token, "--")) {
      const std::string name = token.substr(0, token.find('='));
      if (command->get_option_no_throw(name) == nullptr) {
        return with_help("unknown option " + name + did_you_mean(name, option_names(*command)));
      }
      continue;
    }
    if (token.size() > 1 && token[0] == '-' && !std::isdigit(static_cast<unsigned char>(token[1])) &&
        token[1] != '.') {
      if (command->get_option_no_throw(token.substr(0, 2)) == nullptr) {
        return with_help("unknown option " + token.substr(0, 2));
      }
      continue;
    }
    CLI::App* sub = nullptr;
    try {
      sub = command->get_subcommand(token);
    } catch (const CLI::OptionNotFound&) {
    }
    if (sub != nullptr && !sub->get_name().empty()) {
      command = sub;
      path += " " + token;
      expect_subcommand = !sub->get_subcommands({}).empty();
      continue;
    }
    if (expect_subcommand) {
      return with_help("unknown command '" + token + "'" +
                       did_you_mean(token, subcommand_names(*command)));
    }
  }
  const std::string message = error.what();
  return with_help(message.substr(0, message.find('\n')));
}

}  // namespace edgefm::cli
