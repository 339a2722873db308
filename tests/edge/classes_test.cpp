// Runtime classes: the overlay file (round trip, malformed files), applying it to a pool,
// add/remove semantics, the watcher the running edge polls, fetching a class's vector from a
// real cloud server (a class the FM knows, one it does not), and `edgefm classes` itself.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "cloud/test_server.h"
#include "edge/classes.h"
#include "support/fixtures.h"

namespace edgefm::edge {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  static std::atomic<int> counter{0};
  fs::path dir = fs::temp_directory_path() / ("edgefm-classes-" + name + "-" +
                                              std::to_string(::getpid()) + "-" +
                                              std::to_string(counter++));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// The error message of `f`, or "" when it does not throw edgefm::Error.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

models::TextPool pool_abc() {
  models::TextPool pool(3);
  pool.set("a", {1, 0, 0});
  pool.set("b", {0, 1, 0});
  pool.set("c", {0, 0, 1});
  return pool;
}

ClassOverlay sample_overlay() {
  ClassOverlay overlay;
  overlay.add({"d", {"a d", "the d"}, {0.6f, 0.8f, 0.0f}});
  overlay.add({"e", {}, {0.0f, 0.0f, 1.0f}});
  overlay.remove("b");
  return overlay;
}

void expect_same(const ClassOverlay& a, const ClassOverlay& b) {
  ASSERT_EQ(a.added.size(), b.added.size());
  for (size_t i = 0; i < a.added.size(); ++i) {
    EXPECT_EQ(a.added[i].name, b.added[i].name);
    EXPECT_EQ(a.added[i].prompts, b.added[i].prompts);
    EXPECT_EQ(a.added[i].vector, b.added[i].vector);
  }
  EXPECT_EQ(a.removed, b.removed);
}

TEST(ClassesOverlay, RoundTripThroughTheFile) {
  const fs::path dir = fresh_dir("roundtrip");
  const fs::path path = class_overlay_path(dir);
  EXPECT_EQ(path, dir / "classes.json");
  const ClassOverlay overlay = sample_overlay();
  save_class_overlay(path, overlay);
  const json on_disk = read_json_file(path);
  EXPECT_EQ(on_disk["format"], "edgefm-classes");
  EXPECT_EQ(on_disk["version"], 1);
  expect_same(load_class_overlay(path), overlay);
  // No temporary file left beside it.
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) files += entry.is_regular_file();
  EXPECT_EQ(files, 1u);
  fs::remove_all(dir);
}

TEST(ClassesOverlay, MissingFileIsAnEmptyOverlay) {
  const fs::path dir = fresh_dir("missing");
  const ClassOverlay overlay = load_class_overlay(class_overlay_path(dir));
  EXPECT_TRUE(overlay.empty());
  fs::remove_all(dir);
}

TEST(ClassesOverlay, MalformedFilesNameTheFileAndWhatWasExpected) {
  const fs::path dir = fresh_dir("malformed");
  const fs::path path = class_overlay_path(dir);
  auto error_for = [&](const json& j) {
    write_json_file(path, j);
    return error_of([&] { load_class_overlay(path); });
  };
  json good = sample_overlay().to_json();

  json j = good;
  j["format"] = "edgefm-pool";
  std::string message = error_for(j);
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  EXPECT_NE(message.find("edgefm-classes"), std::string::npos) << message;
  EXPECT_NE(message.find("edgefm-pool"), std::string::npos) << message;

  j = good;
  j.erase("format");
  EXPECT_NE(error_for(j).find("missing field 'format'"), std::string::npos);

  j = good;
  j["version"] = 2;
  EXPECT_NE(error_for(j).find("'version'"), std::string::npos);

  j = good;
  j["added"] = "d";
  message = error_for(j);
  EXPECT_NE(message.find("'added'"), std::string::npos) << message;
  EXPECT_NE(message.find("array"), std::string::npos) << message;

  j = good;
  j["added"][0]["vector"] = "0.6 0.8 0";
  message = error_for(j);
  EXPECT_NE(message.find("class 'd'"), std::string::npos) << message;
  EXPECT_NE(message.find("wrong type"), std::string::npos) << message;

  j = good;
  j["added"][0].erase("vector");
  message = error_for(j);
  EXPECT_NE(message.find("missing field 'vector'"), std::string::npos) << message;
  EXPECT_NE(message.find("class 'd'"), std::string::npos) << message;

  j = good;
  j["added"][0]["vector"] = json::array();
  EXPECT_NE(error_for(j).find("non-empty"), std::string::npos);

  j = good;
  j["added"][1]["vector"] = {1.0, 0.0};  // 2 values after a class with 3
  message = error_for(j);
  EXPECT_NE(message.find("class 'e'"), std::string::npos) << message;
  EXPECT_NE(message.find("got 2"), std::string::npos) << message;

  j = good;
  j["added"][1]["name"] = "d";
  EXPECT_NE(error_for(j).find("twice"), std::string::npos);

  j = good;
  j["removed"] = {"d"};  // added and removed at once
  EXPECT_NE(error_for(j).find("both"), std::string::npos);

  j = good;
  j["removed"] = {1, 2};
  EXPECT_NE(error_for(j).find("'removed'"), std::string::npos);

  write_text(path, "{\"format\": \"edgefm-classes\", ");  // cut off mid-write
  message = error_of([&] { load_class_overlay(path); });
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  fs::remove_all(dir);
}

TEST(ClassesOverlay, AddRemoveSemantics) {
  ClassOverlay overlay;
  overlay.remove("b");
  EXPECT_TRUE(overlay.is_removed("b"));
  // Adding a removed class un-removes it.
  overlay.add({"b", {}, {0, 1, 1}});
  EXPECT_FALSE(overlay.is_removed("b"));
  ASSERT_NE(overlay.find_added("b"), nullptr);
  // Adding again replaces, it does not duplicate.
  overlay.add({"b", {"bee"}, {1, 1, 0}});
  ASSERT_EQ(overlay.added.size(), 1u);
  EXPECT_EQ(overlay.added[0].prompts, std::vector<std::string>{"bee"});
  // Removing an added class drops it and lists it as removed, once.
  overlay.remove("b");
  overlay.remove("b");
  EXPECT_EQ(overlay.find_added("b"), nullptr);
  EXPECT_EQ(overlay.removed, std::vector<std::string>{"b"});
  // Whatever the sequence, the file it makes loads again.
  expect_same(ClassOverlay::from_json(overlay.to_json(), "test"), overlay);
}

TEST(ClassesOverlay, ApplyAddsReplacesAndRemoves) {
  const models::TextPool base = pool_abc();
  ClassOverlay overlay;
  overlay.add({"d", {}, {3.0f, 4.0f, 0.0f}});  // new; normalised on the way in
  overlay.add({"a", {}, {0.0f, 2.0f, 0.0f}});  // replaces the base's "a"
  overlay.remove("c");
  overlay.remove("not-there");                  // ignored
  const models::TextPool pool = apply_class_overlay(base, overlay);
  ASSERT_EQ(pool.size(), 3u);
  EXPECT_FALSE(pool.index_of("c"));
  ASSERT_TRUE(pool.index_of("d"));
  const float* d = pool.vector(*pool.index_of("d"));
  EXPECT_NEAR(d[0], 0.6f, 1e-6);
  EXPECT_NEAR(d[1], 0.8f, 1e-6);
  const float* a = pool.vector(*pool.index_of("a"));
  EXPECT_NEAR(a[0], 0.0f, 1e-6);
  EXPECT_NEAR(a[1], 1.0f, 1e-6);
  EXPECT_EQ(base.size(), 3u);  // the base is untouched
  EXPECT_TRUE(base.index_of("c"));
  // An empty overlay is the base.
  EXPECT_EQ(apply_class_overlay(base, ClassOverlay{}).names(), base.names());
}

TEST(ClassesOverlay, ApplyRefusesAWrongDimensionAndFewerThanTwoClasses) {
  const models::TextPool base = pool_abc();
  ClassOverlay wrong_dim;
  wrong_dim.add({"giraffe", {}, {1.0f, 0.0f, 0.0f, 0.0f, 0.0f}});
  const std::string message = error_of([&] { apply_class_overlay(base, wrong_dim); });
  EXPECT_NE(message.find("'giraffe'"), std::string::npos) << message;
  EXPECT_NE(message.find("3"), std::string::npos) << message;
  EXPECT_NE(message.find("5"), std::string::npos) << message;

  ClassOverlay too_few;
  too_few.remove("a");
  too_few.remove("b");
  EXPECT_NE(error_of([&] { apply_class_overlay(base, too_few); }).find("at least 2"),
            std::string::npos);
  too_few.add({"d", {}, {1, 1, 1}});
  EXPECT_EQ(apply_class_overlay(base, too_few).size(), 2u);
}

TEST(ClassesOverlay, UpdateSavesNothingWhenTheChangeThrows) {
  const fs::path dir = fresh_dir("update");
  const fs::path path = class_overlay_path(dir);
  update_class_overlay(path, [](ClassOverlay& o) { o.remove("b"); });
  const std::string before = read_text(path);
  EXPECT_THROW(update_class_overlay(path,
                                    [](ClassOverlay& o) {
                                      o.remove("c");
                                      throw Error("refused");
                                    }),
               Error);
  EXPECT_EQ(read_text(path), before);
  const ClassOverlay after = update_class_overlay(path, [](ClassOverlay& o) { o.remove("c"); });
  EXPECT_EQ(after.removed, (std::vector<std::string>{"b", "c"}));
  fs::remove_all(dir);
}

TEST(ClassesWatcher, SeesCreationRewritesMalformedFilesAndDeletion) {
  const fs::path dir = fresh_dir("watch");
  const fs::path path = class_overlay_path(dir);
  ClassOverlayWatcher watcher(path);
  EXPECT_FALSE(watcher.poll());  // no file yet
  EXPECT_TRUE(watcher.last_error().empty());

  ClassOverlay overlay;
  overlay.remove("b");
  save_class_overlay(path, overlay);
  auto seen = watcher.poll();
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->removed, std::vector<std::string>{"b"});
  EXPECT_FALSE(watcher.poll());  // unchanged

  overlay.add({"d", {}, {0, 0, 1}});
  save_class_overlay(path, overlay);
  seen = watcher.poll();
  ASSERT_TRUE(seen);
  ASSERT_EQ(seen->added.size(), 1u);
  EXPECT_EQ(seen->added[0].name, "d");

  // The same content rewritten (same size, possibly the same time stamp) is still seen.
  save_class_overlay(path, overlay);
  EXPECT_TRUE(watcher.poll());

  // A malformed file: nullopt with the error, once; the caller keeps its old pool.
  write_text(path, "{\"format\": \"edgefm-classes\", \"version\": 1, \"added\": 7}");
  EXPECT_FALSE(watcher.poll());
  EXPECT_NE(watcher.last_error().find(path.string()), std::string::npos) << watcher.last_error();
  EXPECT_NE(watcher.last_error().find("'added'"), std::string::npos) << watcher.last_error();
  EXPECT_FALSE(watcher.poll());
  EXPECT_TRUE(watcher.last_error().empty());

  // Fixed again.
  save_class_overlay(path, overlay);
  seen = watcher.poll();
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->added.size(), 1u);

  // Deleted: no overlay any more.
  fs::remove(path);
  seen = watcher.poll();
  ASSERT_TRUE(seen);
  EXPECT_TRUE(seen->empty());
  EXPECT_FALSE(watcher.poll());

  // A watcher started on an existing file returns it at its first poll.
  save_class_overlay(path, overlay);
  ClassOverlayWatcher late(path);
  ASSERT_TRUE(late.poll());
  EXPECT_FALSE(late.poll());
  fs::remove_all(dir);
}

double dot(const std::vector<float>& a, const float* b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

double norm(const std::vector<float>& a) { return std::sqrt(dot(a, a.data())); }

TEST(ClassesFetch, AClassTheFmKnowsComesBackNormalised) {
  cloud::testing::TestServer server;
  cloud::OipClient client(server.client_options());
  const models::TextPool& fm_pool = server.fm.pool;

  const AddedClass sneaker = fetch_class(client, "Sneaker", {});
  EXPECT_EQ(sneaker.name, "Sneaker");
  EXPECT_TRUE(sneaker.prompts.empty());
  ASSERT_EQ(static_cast<int>(sneaker.vector.size()), fm_pool.dim());
  EXPECT_NEAR(norm(sneaker.vector), 1.0, 1e-5);
  EXPECT_NEAR(dot(sneaker.vector, fm_pool.vector(*fm_pool.index_of("Sneaker"))), 1.0, 1e-4);

  // Several prompts: their average, normalised.
  const AddedClass shoe = fetch_class(client, "Shoe", {"Sneaker", "Sandal"});
  EXPECT_EQ(shoe.prompts, (std::vector<std::string>{"Sneaker", "Sandal"}));
  EXPECT_NEAR(norm(shoe.vector), 1.0, 1e-5);
  std::vector<float> mean(static_cast<size_t>(fm_pool.dim()));
  for (const char* name : {"Sneaker", "Sandal"}) {
    const float* v = fm_pool.vector(*fm_pool.index_of(name));
    for (size_t k = 0; k < mean.size(); ++k) mean[k] += v[k];
  }
  EXPECT_NEAR(dot(shoe.vector, mean.data()) / norm(mean), 1.0, 1e-4);
}

TEST(ClassesFetch, AClassTheFmDoesNotKnowIsAClearError) {
  cloud::testing::TestServer server;
  cloud::OipClient client(server.client_options());
  try {
    fetch_class(client, "Giraffe", {});
    FAIL() << "Giraffe was accepted";
  } catch (const cloud::RequestError& e) {
    FAIL() << "a raw request error: " << e.what();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'Giraffe'"), std::string::npos) << message;
    EXPECT_NE(message.find("does not know"), std::string::npos) << message;
  }
}

// Runs `edgefm <arguments>`; returns the exit status and fills `output` (stdout + stderr).
int run_edgefm(const std::string& arguments, std::string* output) {
  const fs::path out = fresh_dir("cli-out") / "output.txt";
  const int status =
      std::system((std::string(EDGEFM_BIN) + " " + arguments + " > " + out.string() + " 2>&1").c_str());
  *output = read_text(out);
  fs::remove_all(out.parent_path());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

TEST(ClassesCommand, AddUnknownClassFailsAndLeavesTheOverlayUntouched) {
  cloud::testing::TestServer server;
  const fs::path dir = fresh_dir("cli");
  const std::string common =
      " --state " + dir.string() + " --server " + server.url() + " --token " + cloud::testing::kToken;
  std::string output;
  ASSERT_EQ(run_edgefm("classes add Sneaker --prompt Sneaker" + common, &output), 0) << output;
  EXPECT_NE(output.find("added class 'Sneaker'"), std::string::npos) << output;
  const fs::path path = class_overlay_path(dir);
  const std::string before = read_text(path);
  ASSERT_EQ(load_class_overlay(path).added.size(), 1u);

  EXPECT_NE(run_edgefm("classes add Giraffe" + common, &output), 0) << output;
  EXPECT_NE(output.find("Giraffe"), std::string::npos) << output;
  EXPECT_NE(output.find("does not know"), std::string::npos) << output;
  EXPECT_EQ(read_text(path), before);

  // remove, then list against the fixture student (its own pool, lower-case names, its own
  // dimension).
  const std::string student = edgefm::testing::small_models().student;
  ASSERT_EQ(run_edgefm("classes remove Sneaker --state " + dir.string(), &output), 0) << output;
  EXPECT_NE(output.find("dropped the added class"), std::string::npos) << output;
  ASSERT_EQ(run_edgefm("classes remove bag --state " + dir.string() + " --student " + student,
                       &output),
            0)
      << output;
  const std::string after_removals = read_text(path);
  // A name the student does not hold is refused when the student is given.
  EXPECT_NE(run_edgefm("classes remove Giraffe --state " + dir.string() + " --student " + student,
                       &output),
            0)
      << output;
  EXPECT_NE(output.find("'Giraffe' is neither in the student's pool"), std::string::npos) << output;
  EXPECT_EQ(read_text(path), after_removals);
  const ClassOverlay overlay = load_class_overlay(path);
  EXPECT_TRUE(overlay.added.empty());
  EXPECT_EQ(overlay.removed, (std::vector<std::string>{"Sneaker", "bag"}));
  ASSERT_EQ(run_edgefm("classes list --state " + dir.string() + " --student " + student, &output),
            0)
      << output;
  EXPECT_NE(output.find("0 added, 2 removed"), std::string::npos) << output;
  EXPECT_NE(output.find("effective pool: 9 classes"), std::string::npos) << output;
  EXPECT_NE(output.find("removed class 'Sneaker' is not in the student's pool"), std::string::npos)
      << output;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace edgefm::edge
