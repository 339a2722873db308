#include <gtest/gtest.h>

#include <regex>

#include "common/provenance.h"

using namespace edgefm;

TEST(Provenance, HasEveryFieldWithAnIsoUtcDate) {
  json p = provenance();
  for (const char* key : {"command", "date", "machine", "version"}) {
    ASSERT_TRUE(p.contains(key)) << key;
    ASSERT_TRUE(p[key].is_string()) << key;
    EXPECT_FALSE(p[key].get<std::string>().empty()) << key;
  }
  EXPECT_TRUE(std::regex_match(p["date"].get<std::string>(),
                               std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)")))
      << p["date"];
  EXPECT_EQ(p["version"].get<std::string>().rfind("0.1.0", 0), 0u) << p["version"];
}

TEST(Provenance, MachineNamesCoresAndMemory) {
  std::string machine = machine_description();
  EXPECT_TRUE(std::regex_search(machine, std::regex(R"( x\d+)"))) << machine;
  EXPECT_NE(machine.find(" GiB"), std::string::npos) << machine;
}

TEST(Provenance, CommandLineIsRecordedAndQuotedForAShell) {
  EXPECT_EQ(shell_command_line({"edgefm", "eval", "--json", "out/x.json"}),
            "edgefm eval --json out/x.json");
  EXPECT_EQ(shell_command_line({"a b", "it's", ""}), "'a b' 'it'\\''s' ''");
  // Without set_command_line the test program's own command line is read from /proc.
  EXPECT_NE(provenance()["command"].get<std::string>().find("common_tests"), std::string::npos);
  char program[] = "edgefm";
  char sub[] = "models";
  char* argv[] = {program, sub};
  set_command_line(2, argv);
  EXPECT_EQ(provenance()["command"], "edgefm models");
}
