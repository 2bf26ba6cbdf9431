// Output files (core/io.h): atomic replacement through a unique temporary
// file, kept modes, symbolic links written through, special files and folders
// refused, and nothing left behind on any failure.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "core/io.h"
#include "tests/helpers.h"

namespace bb {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::vector<std::string> entries(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

mode_t mode_of(const std::string& path) {
  struct stat status {};
  EXPECT_EQ(::stat(path.c_str(), &status), 0) << path;
  return status.st_mode & 07777;
}

TEST(WriteAtomically, ReplacesTheFileAndLeavesNoTemporary) {
  testing::TempDir dir;
  const auto out = dir.file("r.jsonl");
  write_atomically(out, "first\n");
  EXPECT_EQ(read_text(out), "first\n");
  write_atomically(out, "second\n");
  EXPECT_EQ(read_text(out), "second\n");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"r.jsonl"});
}

TEST(WriteAtomically, NewFilesFollowTheUmaskAndExistingFilesKeepTheirMode) {
  testing::TempDir dir;
  const auto out = dir.file("new.txt");
  const mode_t mask = ::umask(022);
  write_atomically(out, "x");
  EXPECT_EQ(mode_of(out), 0644u);
  ASSERT_EQ(::chmod(out.c_str(), 0640), 0);
  write_atomically(out, "y");
  EXPECT_EQ(mode_of(out), 0640u);
  ::umask(mask);
}

TEST(WriteAtomically, NeverTouchesAUsersFileNamedLikeATemporary) {
  testing::TempDir dir;
  const auto out = dir.file("s.jsonl");
  for (const char* name : {"s.jsonl.tmp", ".s.jsonl.tmp", ".s.jsonl.tmp.XXXXXX"}) {
    write_text(dir.file(name), std::string("mine: ") + name);
  }
  write_atomically(out, "results\n");
  EXPECT_EQ(read_text(out), "results\n");
  for (const char* name : {"s.jsonl.tmp", ".s.jsonl.tmp", ".s.jsonl.tmp.XXXXXX"}) {
    EXPECT_EQ(read_text(dir.file(name)), std::string("mine: ") + name);
  }
  EXPECT_EQ(entries(dir.path()).size(), 4u);
}

TEST(WriteAtomically, WritesThroughSymbolicLinks) {
  testing::TempDir dir;
  fs::create_directory(dir.path() / "real");
  write_text(dir.file("real/target.txt"), "old");
  ASSERT_EQ(::chmod(dir.file("real/target.txt").c_str(), 0600), 0);
  fs::create_symlink("real/target.txt", dir.path() / "link1");
  fs::create_symlink("link1", dir.path() / "link2");
  EXPECT_EQ(output_target(dir.file("link2")), (dir.path() / "real/target.txt").string());
  write_atomically(dir.file("link2"), "new");
  EXPECT_TRUE(fs::is_symlink(dir.path() / "link1"));
  EXPECT_TRUE(fs::is_symlink(dir.path() / "link2"));
  EXPECT_EQ(read_text(dir.file("real/target.txt")), "new");
  EXPECT_EQ(mode_of(dir.file("real/target.txt")), 0600u);
  EXPECT_EQ(entries(dir.path() / "real"), std::vector<std::string>{"target.txt"});
  // A dangling link creates its target.
  fs::create_symlink("real/created.txt", dir.path() / "dangling");
  write_atomically(dir.file("dangling"), "made");
  EXPECT_TRUE(fs::is_symlink(dir.path() / "dangling"));
  EXPECT_EQ(read_text(dir.file("real/created.txt")), "made");
  // A loop is refused, naming the path.
  fs::create_symlink("loop_b", dir.path() / "loop_a");
  fs::create_symlink("loop_a", dir.path() / "loop_b");
  testing::expect_error(
      [&] { check_output_path(dir.file("loop_a"), "--out"); },
      {dir.file("loop_a"), "too many levels of symbolic links"});
}

TEST(WriteAtomically, RefusesSpecialFilesAndFoldersAndLeavesThemAlone) {
  testing::TempDir dir;
  const auto fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  testing::expect_error([&] { write_atomically(fifo, "x"); }, {fifo, "is a FIFO", "not a regular file"});
  testing::expect_error([&] { check_output_path(fifo, "--out"); }, {"--out " + fifo, "is a FIFO"});
  EXPECT_TRUE(fs::is_fifo(fifo));
  fs::create_directory(dir.path() / "folder");
  testing::expect_error(
      [&] { write_atomically(dir.file("folder"), "x"); }, {dir.file("folder"), "is a folder"});
  testing::expect_error(
      [&] { check_output_path(dir.file("folder"), "--out"); }, {"--out", "is a folder"});
  EXPECT_TRUE(fs::is_directory(dir.path() / "folder"));
  EXPECT_TRUE(fs::is_empty(dir.path() / "folder"));
  testing::expect_error(
      [&] { check_output_path("/dev/null", "--out"); }, {"--out /dev/null", "is a character device"});
  EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{"fifo", "folder"}));
}

TEST(CheckOutputPath, RefusesMissingAndUnusableFolders) {
  testing::TempDir dir;
  testing::expect_error(
      [&] { check_output_path(dir.file("missing/x.pt"), "--out"); },
      {"--out " + dir.file("missing/x.pt"), "folder " + dir.file("missing") + " does not exist"});
  write_text(dir.file("plain"), "a file");
  testing::expect_error(
      [&] { check_output_path(dir.file("plain/x.pt"), "--out"); }, {"is not a folder"});
  testing::expect_error(
      [&] { check_output_path("/proc/x.jsonl", "--out"); },
      {"--out /proc/x.jsonl", "cannot create a file in folder /proc"});
  testing::expect_error([&] { check_output_path("", "--out"); }, {"--out", "empty"});
  if (::geteuid() != 0) {
    fs::create_directory(dir.path() / "readonly");
    fs::permissions(dir.path() / "readonly", fs::perms::owner_read | fs::perms::owner_exec);
    testing::expect_error(
        [&] { check_output_path(dir.file("readonly/x.pt"), "--out"); }, {"cannot create a file"});
    testing::expect_error([&] { write_atomically(dir.file("readonly/x.pt"), "x"); }, {"cannot create a file"});
    write_text(dir.file("locked.txt"), "keep");
    fs::permissions(dir.file("locked.txt"), fs::perms::owner_read);
    testing::expect_error([&] { check_output_path(dir.file("locked.txt"), "--out"); }, {"not writable"});
    fs::permissions(dir.path() / "readonly", fs::perms::owner_all);
  }
  // A path that passes leaves nothing behind: the probe file is removed.
  check_output_path(dir.file("fine.jsonl"), "--out");
  std::vector<std::string> expected{"plain"};
  if (::geteuid() != 0) {
    expected = {"locked.txt", "plain", "readonly"};
  }
  EXPECT_EQ(entries(dir.path()), expected);
}

TEST(WriteAtomically, SeveralFilesAllOrNothing) {
  testing::TempDir dir;
  write_text(dir.file("a.pt"), "old a");
  write_text(dir.file("b.json"), "old b");
  write_atomically({{dir.file("a.pt"), "new a"}, {dir.file("b.json"), "new b"}});
  EXPECT_EQ(read_text(dir.file("a.pt")), "new a");
  EXPECT_EQ(read_text(dir.file("b.json")), "new b");
  // The second target cannot be written: the first keeps its old contents.
  fs::create_directory(dir.path() / "c.json");
  testing::expect_error(
      [&] { write_atomically({{dir.file("a.pt"), "newer a"}, {dir.file("c.json"), "c"}}); },
      {dir.file("c.json"), "is a folder"});
  EXPECT_EQ(read_text(dir.file("a.pt")), "new a");
  // The same file twice (here through a link) is refused before any writing.
  fs::create_symlink("a.pt", dir.path() / "a-link.pt");
  testing::expect_error(
      [&] { write_atomically({{dir.file("a.pt"), "1"}, {dir.file("a-link.pt"), "2"}}); },
      {"written twice"});
  EXPECT_EQ(read_text(dir.file("a.pt")), "new a");
  EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{"a-link.pt", "a.pt", "b.json", "c.json"}));
}

}  // namespace
}  // namespace bb
