// edgefm: one program, one subcommand per job (cli/commands.h). Errors raised anywhere below
// surface as one line on stderr and exit status 1; usage errors exit 2.
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/provenance.h"
#include "common/threads.h"

int main(int argc, char** argv) {
  edgefm::set_command_line(argc, argv);
  edgefm::pin_openblas_to_one_thread();
  return edgefm::cli::run_program(std::vector<std::string>(argv + 1, argv + argc));
}
