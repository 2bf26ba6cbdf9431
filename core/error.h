// Two error channels (see DESIGN.md, "Conventions"):
//  - BB_CHECK: a user or input error. Throws bb::Error with a formatted,
//    one-line message that names the file or option at fault.
//  - BB_ASSERT: a broken internal invariant. Prints where and aborts, in every
//    build type. Never used for anything that depends on input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <c10/util/ArrayRef.h>
#include <fmt/format.h>

namespace bb {

// Every error a user can cause. The command line prints what() and exits 2.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

[[noreturn]] inline void assert_fail(
    const char* expr,
    const char* file,
    int line,
    const std::string& message) {
  std::fprintf(
      stderr,
      "boundbench: internal error: %s failed at %s:%d: %s\n",
      expr,
      file,
      line,
      message.c_str());
  std::abort();
}

}  // namespace bb

// Tensor shapes in messages print as [2, 3, 4].
template <>
struct fmt::formatter<c10::ArrayRef<int64_t>> : fmt::formatter<std::string_view> {
  template <typename Context>
  auto format(c10::ArrayRef<int64_t> sizes, Context& context) const {
    return fmt::format_to(context.out(), "[{}]", fmt::join(sizes, ", "));
  }
};

#define BB_CHECK(cond, ...)                         \
  do {                                              \
    if (!(cond)) {                                  \
      throw ::bb::Error(fmt::format(__VA_ARGS__));  \
    }                                               \
  } while (false)

#define BB_ASSERT(cond, ...)                                            \
  do {                                                                  \
    if (!(cond)) {                                                      \
      ::bb::assert_fail(#cond, __FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
    }                                                                   \
  } while (false)
