// JSON from outside the program (the nesting cap, error text that cannot throw), the
// append-only events log and HMAC-SHA256.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/checksum.h"
#include "common/json_io.h"
#include "common/json_lines.h"

using namespace edgefm;

namespace {

std::string nested_arrays(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

}  // namespace

TEST(UntrustedJson, ParsesOrdinaryJson) {
  json j = parse_untrusted_json(R"({"a":[1,2,{"b":null}],"c":"d"})");
  EXPECT_EQ(j["a"][2]["b"], nullptr);
  EXPECT_EQ(j["c"], "d");
}

TEST(UntrustedJson, NestingUpToTheLimitIsAccepted) {
  EXPECT_NO_THROW(parse_untrusted_json(nested_arrays(kMaxJsonDepth)));
  EXPECT_NO_THROW(parse_untrusted_json(nested_arrays(3), 3));
  EXPECT_THROW(parse_untrusted_json(nested_arrays(4), 3), JsonInputError);
  EXPECT_THROW(parse_untrusted_json(nested_arrays(kMaxJsonDepth + 1)), JsonInputError);
}

TEST(UntrustedJson, DeepNestingIsRefusedWithoutRecursion) {
  // 100 000 levels would overflow the stack in any recursive walk (dump, copy, flatten).
  const int depth = 100000;
  std::string arrays = nested_arrays(depth);
  std::string objects;
  for (int i = 0; i < depth; ++i) objects += R"({"a":)";
  objects += "1" + std::string(depth, '}');
  for (const auto* text : {&arrays, &objects}) {
    try {
      parse_untrusted_json(*text);
      FAIL() << "accepted";
    } catch (const JsonInputError& e) {
      EXPECT_NE(std::string(e.what()).find("nested deeper than 64 levels"), std::string::npos)
          << e.what();
    }
  }
  // Unterminated deep nesting too.
  EXPECT_THROW(parse_untrusted_json(std::string(depth, '[')), JsonInputError);
}

TEST(UntrustedJson, MalformedTextAndHugeNumbersAreInputErrors) {
  EXPECT_THROW(parse_untrusted_json("{"), JsonInputError);
  EXPECT_THROW(parse_untrusted_json(""), JsonInputError);
  EXPECT_THROW(parse_untrusted_json("\"\xff\""), JsonInputError);
  // nlohmann reports a number beyond double as out_of_range, not parse_error.
  EXPECT_THROW(parse_untrusted_json(R"({"data":[1e400]})"), JsonInputError);
}

TEST(UntrustedJson, WriteJsonFileDoesNotThrowOnInvalidUtf8) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("edgefm-json-utf8-" + std::to_string(::getpid()) + ".json");
  EXPECT_NO_THROW(write_json_file(path, json{{"error", std::string("bad \xff")}}));
  EXPECT_EQ(read_json_file(path)["error"], "bad \xEF\xBF\xBD");
  std::filesystem::remove(path);
}

TEST(UntrustedJson, DumpReplacesInvalidUtf8InsteadOfThrowing) {
  json j = {{"error", std::string("no model '\xff\xfe'")}};
  EXPECT_THROW((void)j.dump(), json::exception);
  std::string text;
  ASSERT_NO_THROW(text = dump_json(j));
  EXPECT_EQ(parse_untrusted_json(text)["error"], "no model '\xEF\xBF\xBD\xEF\xBF\xBD'");
}

// ---- the edge's events log ----------------------------------------------------------------

namespace {

std::vector<std::string> lines_of(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST(JsonLinesLog, ASecondOpenKeepsEarlierLines) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("edgefm-events-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const auto path = dir / "state" / "events.jsonl";
  {
    JsonLinesLog log(path);  // creates the folders
    log.write({{"event", "audit"}, {"run", 1}});
    log.write({{"event", "drift"}, {"run", 1}});
  }
  {
    JsonLinesLog log(path);  // the edge restarted
    log.write({{"event", "audit"}, {"run", 2}});
  }
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(json::parse(lines[0])["run"], 1);
  EXPECT_EQ(json::parse(lines[1])["event"], "drift");
  EXPECT_EQ(json::parse(lines[2])["run"], 2);

  // A run that died mid-line: the next run's first event still gets a line of its own.
  { std::ofstream(path, std::ios::app) << R"({"event":"cut)"; }
  {
    JsonLinesLog log(path);
    log.write({{"event", "model_swapped"}, {"name", std::string("bad \xff byte")}});
  }
  lines = lines_of(path);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(json::parse(lines[4])["event"], "model_swapped");

  JsonLinesLog nowhere("");  // no path: drops events
  nowhere.write({{"event", "x"}});
  std::filesystem::remove_all(dir);
}

// ---- HMAC (artifact signatures) -------------------------------------------------------------

TEST(Checksum, HmacSha256MatchesRfc4231) {
  // RFC 4231 test case 2.
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
}

// Found by fuzz/metadata_fuzzer: get<int>() truncated 3.5 to 3 and converted 1e300 with
// undefined behaviour (UBSan: float-cast-overflow); json_field now checks integers.
TEST(JsonField, IntegersMustBeWholeAndInRange) {
  const json j = parse_untrusted_json(
      R"({"whole": 3.0, "half": 3.5, "huge": 1e300, "negative": -1, "big": 4294967296,
          "dims": [1, 2.0, 3], "bad_dims": [1, 1e300], "text": "3"})");
  EXPECT_EQ(json_field<int>(j, "whole", "t"), 3);
  EXPECT_EQ(json_field<std::vector<int>>(j, "dims", "t"), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(json_field<int64_t>(j, "big", "t"), int64_t{4294967296});
  EXPECT_THROW(json_field<int>(j, "half", "t"), Error);
  EXPECT_THROW(json_field<int>(j, "huge", "t"), Error);
  EXPECT_THROW(json_field<uint64_t>(j, "huge", "t"), Error);
  EXPECT_THROW(json_field<size_t>(j, "negative", "t"), Error);
  EXPECT_THROW(json_field<int>(j, "big", "t"), Error);
  EXPECT_THROW(json_field<std::vector<int>>(j, "bad_dims", "t"), Error);
  EXPECT_THROW(json_field<int>(j, "text", "t"), Error);
  try {
    json_field<int>(j, "half", "ctx");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "ctx: field 'half': expected an integer in [-2147483648, 2147483647], got 3.5");
  }
}
