// Small helpers shared by the GoogleTest suites.
#pragma once

#include <filesystem>
#include <functional>
#include <initializer_list>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"

namespace bb::testing {

// Runs `body`, expects a bb::Error whose message holds every `part`.
inline void expect_error(
    const std::function<void()>& body,
    std::initializer_list<std::string> parts) {
  try {
    body();
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const auto& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos)
          << "message '" << message << "' lacks '" << part << "'";
    }
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    return;
  }
  ADD_FAILURE() << "expected a bb::Error";
}

// A fresh, empty folder for one test, removed when it goes out of scope.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string("boundbench_") + info->test_suite_name() + "_" + info->name();
    for (char& ch : name) {
      if (ch == '/') {
        ch = '_';
      }
    }
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace bb::testing
