#pragma once
// Provenance of a measurement: every results JSON the project writes carries a "provenance"
// member made by provenance(), so a figure in docs/results.md can name the command, the date
// and the machine that produced it (scripts/results.py reads it).
#include <string>
#include <vector>

#include "common/json_io.h"

namespace edgefm {

// Records the command line once, at the start of main(). Without this call provenance()
// reads /proc/self/cmdline.
void set_command_line(int argc, char** argv);

// The arguments as one line a shell would run again: arguments with spaces, quotes or other
// shell characters are single-quoted.
std::string shell_command_line(const std::vector<std::string>& args);

// "<cpu model> x<logical cores>, <RAM> GiB, <OS>" from /proc/cpuinfo, /proc/meminfo and
// /etc/os-release; a part that cannot be read is left out.
std::string machine_description();

// "0.1.0", plus the `git describe` of the source tree when CMake could run git at configure
// time: "0.1.0 (a25e022-dirty)".
std::string edgefm_version();

// {"command": ..., "date": "2026-12-03T15:22:00Z" (UTC, when called), "machine": ...,
//  "version": ...}
json provenance();

}  // namespace edgefm
