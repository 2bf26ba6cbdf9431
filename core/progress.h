// Progress for long work: samples done, rate and time left, redrawn on one
// line of a terminal. Quiet when stderr is not a terminal or CI is set, so
// logs stay clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace bb {

class Progress {
 public:
  // `show` = false keeps it quiet even on a terminal.
  Progress(std::string label, int64_t total, bool show = true);
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress();
  void advance(int64_t done, const std::string& note = "");
  // Clears the line (when shown).
  void finish();
  static bool enabled();

 private:
  void draw(const std::string& note);

  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  bool shown_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace bb
