#pragma once
// Small real models for tests: a reference FM and students trained through the real
// `edgefm fm train` / `edgefm customize` on a few thousand images, once per build folder
// (later test programs reuse the files; a file lock keeps parallel tests from racing).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace edgefm::testing {

struct SmallModels {
  std::string fm;            // reference FM (all 10 classes)
  std::string student;       // tiny-cnn student, all classes
  std::string seen_student;  // tiny-cnn student on the default split's seen classes only
};

inline std::string fixture_dir() { return EDGEFM_FIXTURE_DIR; }

// Runs a shell command; throws with the command when it fails.
inline void run_or_throw(const std::string& command) {
  if (std::system(command.c_str()) != 0) throw std::runtime_error("fixture command failed: " + command);
}

inline const SmallModels& small_models() {
  static const SmallModels models = [] {
    namespace fs = std::filesystem;
    const std::string dir = fixture_dir();
    fs::create_directories(dir);
    int lock = ::open((dir + "/.lock").c_str(), O_CREAT | O_RDWR, 0644);
    ::flock(lock, LOCK_EX);
    SmallModels m{dir + "/fm.pt", dir + "/student.pt", dir + "/seen-student.pt"};
    const std::string bin = EDGEFM_BIN;
    const std::string quiet = " > " + dir + "/log.txt 2>&1";
    // --reuse keeps a sound FM file trained with these settings; a new one makes new students.
    // Checked once per build of the program (the stamp), not by every test process.
    const std::string stamp = dir + "/.fm-checked";
    if (!fs::exists(stamp) || fs::last_write_time(stamp) < fs::last_write_time(bin)) {
      const auto fm_time = fs::exists(m.fm) ? fs::last_write_time(m.fm) : fs::file_time_type::min();
      run_or_throw(bin + " fm train --train-limit 4000 --test-limit 500 --epochs 2 --width 8"
                   " --batch-size 128 --lr 0.003 --reuse --out " + m.fm + quiet);
      if (fs::last_write_time(m.fm) != fm_time) {
        fs::remove(m.student);
        fs::remove(m.seen_student);
      }
      std::ofstream{stamp};
      fs::last_write_time(stamp, fs::file_time_type::clock::now());
    }
    const std::string customize = bin + " customize --fm " + m.fm +
                                  " --train-limit 4000 --validation 500 --budget 50% --epochs 6"
                                  " --strategy margin_diversity --rounds 2";
    if (!fs::exists(m.student)) run_or_throw(customize + " --out " + m.student + quiet);
    if (!fs::exists(m.seen_student)) {
      run_or_throw(customize + " --seen-only --out " + m.seen_student + quiet);
    }
    ::flock(lock, LOCK_UN);
    ::close(lock);
    return m;
  }();
  return models;
}

}  // namespace edgefm::testing
