#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "common/checksum.h"
#include "common/error.h"
#include "common/json_io.h"
#include "common/progress.h"
#include "common/table.h"

using namespace edgefm;

TEST(Checksum, KnownSha256) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto path = std::filesystem::temp_directory_path() / "edgefm-checksum-test";
  write_text_file(path, "abc");
  EXPECT_EQ(sha256_file(path), sha256_hex("abc"));
  std::filesystem::remove(path);
  EXPECT_THROW(sha256_file("/nonexistent/file"), Error);
}

TEST(Table, AlignsAndRejectsWrongWidth) {
  Table t({"a", "long header"});
  t.add_row({"wide cell", "1"});
  std::ostringstream out;
  t.print(out);
  EXPECT_EQ(out.str(), "a          long header\n---------  -----------\nwide cell  1          \n");
  EXPECT_EQ(t.markdown(), "| a | long header |\n|---|---|\n| wide cell | 1 |\n");
  EXPECT_THROW(t.add_row({"only one"}), Error);
  EXPECT_EQ(fmt_percent(0.91234), "91.23 %");
}

TEST(JsonIo, FieldErrorsNameTheField) {
  json j = {{"n", "text"}};
  try {
    json_field<int>(j, "n", "config 'x'");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("field 'n' has the wrong type"), std::string::npos);
  }
  EXPECT_THROW(json_field<int>(j, "missing", "config"), Error);
  auto path = std::filesystem::temp_directory_path() / "edgefm-json-test" / "x.json";
  write_json_file(path, {{"a", 1}});
  EXPECT_EQ(read_json_file(path)["a"], 1);
  std::filesystem::remove_all(path.parent_path());
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(65), "1:05");
  EXPECT_EQ(format_duration(3725), "1:02:05");
  Progress::set_quiet(true);
  Progress p("x", 10, "img");
  p.update(5);
  p.finish();
}
