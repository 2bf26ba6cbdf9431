#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace bb {

bool Progress::enabled() {
  const char* ci = std::getenv("CI");
  return isatty(STDERR_FILENO) == 1 && (ci == nullptr || *ci == '\0');
}

Progress::Progress(std::string label, int64_t total, bool show)
    : label_(std::move(label)),
      total_(total),
      shown_(show && enabled()),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  finish();
}

void Progress::advance(int64_t done, const std::string& note) {
  done_ += done;
  if (!shown_) {
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (done_ < total_ && now - last_draw_ < std::chrono::milliseconds(200)) {
    return;
  }
  last_draw_ = now;
  draw(note);
}

void Progress::draw(const std::string& note) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  const double left = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0.0;
  const double fraction = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(fraction * kWidth);
  std::fprintf(
      stderr,
      "\r\033[K%s [%s%s] %3.0f%% %lld/%lld %.1f/s ETA %d:%02d %s",
      label_.c_str(),
      std::string(filled, '#').c_str(),
      std::string(kWidth - filled, '.').c_str(),
      100 * fraction,
      static_cast<long long>(done_),
      static_cast<long long>(total_),
      rate,
      static_cast<int>(left) / 60,
      static_cast<int>(left) % 60,
      note.c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (shown_ && !finished_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  finished_ = true;
}

}  // namespace bb
