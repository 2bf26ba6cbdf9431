#include "core/io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/error.h"

namespace bb {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxSymlinkHops = 40;
// Longest part of the target's name kept in its temporary file's name, so
// that ".NAME.tmp.XXXXXX" stays under NAME_MAX (255 bytes).
constexpr size_t kMaxTempBase = 200;

std::string errno_text(int error) {
  return std::strerror(error);
}

const char* kind_of(mode_t mode) {
  if (S_ISFIFO(mode)) {
    return "a FIFO";
  }
  if (S_ISCHR(mode)) {
    return "a character device";
  }
  if (S_ISBLK(mode)) {
    return "a block device";
  }
  if (S_ISSOCK(mode)) {
    return "a socket";
  }
  if (S_ISDIR(mode)) {
    return "a folder";
  }
  return "a special file";
}

fs::path folder_of(const fs::path& path) {
  return path.has_parent_path() ? path.parent_path() : fs::path(".");
}

// What writing a path would replace.
struct Target {
  fs::path path;      // output_target(path)
  std::string who;    // how errors name it: "--out x.jsonl" or "x.jsonl"
  bool exists = false;
  struct stat status {};
};

// Checks every rule but the probe; `who` names the path in errors.
Target inspect(const std::string& path, const std::string& who) {
  BB_CHECK(!path.empty(), "{}: empty output path", who);
  Target target;
  target.path = output_target(path);
  target.who = target.path.string() == path
      ? who
      : fmt::format("{} (a link to {})", who, target.path.string());
  if (::lstat(target.path.c_str(), &target.status) == 0) {
    target.exists = true;
    BB_CHECK(!S_ISDIR(target.status.st_mode), "{}: is a folder, not a file", target.who);
    BB_CHECK(
        S_ISREG(target.status.st_mode),
        "{}: is {}, not a regular file; refusing to replace it",
        target.who,
        kind_of(target.status.st_mode));
    BB_CHECK(
        ::access(target.path.c_str(), W_OK) == 0,
        "{}: the file exists and is not writable",
        target.who);
    return target;
  }
  const int error = errno;
  const fs::path folder = folder_of(target.path);
  struct stat folder_status {};
  if (::stat(folder.c_str(), &folder_status) != 0) {
    const int folder_error = errno;
    BB_CHECK(
        folder_error != ENOENT,
        "{}: folder {} does not exist",
        target.who,
        folder.string());
    throw Error(fmt::format(
        "{}: cannot use folder {} ({})", target.who, folder.string(), errno_text(folder_error)));
  }
  BB_CHECK(
      S_ISDIR(folder_status.st_mode),
      "{}: {} is not a folder",
      target.who,
      folder.string());
  BB_CHECK(error == ENOENT, "{}: {}", target.who, errno_text(error));
  return target;
}

// A temporary file beside a target, removed unless renamed over it.
class TempFile {
 public:
  explicit TempFile(const Target& target) : target_(target) {
    const fs::path folder = folder_of(target.path);
    const std::string base = target.path.filename().string().substr(0, kMaxTempBase);
    std::string name = (folder / ("." + base + ".tmp.XXXXXX")).string();
    fd_ = ::mkostemp(name.data(), O_CLOEXEC);
    BB_CHECK(
        fd_ >= 0,
        "{}: cannot create a file in folder {} ({})",
        target.who,
        folder.string(),
        errno_text(errno));
    path_ = name;
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    if (!path_.empty()) {
      ::unlink(path_.c_str());
    }
  }

  // Writes `text`, gives the file the mode (and owner) it will have, flushes
  // it to disk and closes it.
  void write(const std::string& text) {
    const char* data = text.data();
    size_t left = text.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, data, left);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      BB_CHECK(n > 0, "{}: write error ({})", target_.who, errno_text(n < 0 ? errno : EIO));
      data += n;
      left -= static_cast<size_t>(n);
    }
    mode_t mode = 0;
    if (target_.exists) {
      // Root keeps the owner too; others keep the group where they may.
      // Failures leave the creator's, as a new file would have.
      const uid_t owner = ::geteuid() == 0 ? target_.status.st_uid : static_cast<uid_t>(-1);
      [[maybe_unused]] const int ignored = ::fchown(fd_, owner, target_.status.st_gid);
      mode = target_.status.st_mode & 07777;
    } else {
      const mode_t mask = ::umask(0);
      ::umask(mask);
      mode = 0666 & ~mask;
    }
    BB_CHECK(::fchmod(fd_, mode) == 0, "{}: cannot set the mode ({})", target_.who, errno_text(errno));
    BB_CHECK(::fsync(fd_) == 0, "{}: write error ({})", target_.who, errno_text(errno));
    const int fd = fd_;
    fd_ = -1;
    BB_CHECK(::close(fd) == 0, "{}: write error ({})", target_.who, errno_text(errno));
  }

  void rename_into_place() {
    BB_CHECK(
        ::rename(path_.c_str(), target_.path.c_str()) == 0,
        "{}: cannot replace ({})",
        target_.who,
        errno_text(errno));
    path_.clear();
  }

 private:
  Target target_;
  std::string path_;
  int fd_ = -1;
};

}  // namespace

std::string output_target(const std::string& path) {
  fs::path current(path);
  for (int hops = 0;; ++hops) {
    struct stat status {};
    if (::lstat(current.c_str(), &status) != 0 || !S_ISLNK(status.st_mode)) {
      return current.string();
    }
    BB_CHECK(hops < kMaxSymlinkHops, "{}: too many levels of symbolic links", path);
    std::string link(PATH_MAX, '\0');
    const ssize_t n = ::readlink(current.c_str(), link.data(), link.size());
    BB_CHECK(n >= 0, "{}: cannot read the symbolic link {} ({})", path, current.string(), errno_text(errno));
    link.resize(static_cast<size_t>(n));
    const fs::path next(link);
    current = next.is_absolute() ? next : current.parent_path() / next;
  }
}

void check_output_path(const std::string& path, const std::string& option) {
  const std::string who = option.empty() ? path : option + " " + path;
  const Target target = inspect(path, who);
  // Creating a file is the only sure test (permissions, read-only mounts,
  // /proc); the probe is removed at once.
  TempFile probe(target);
}

void write_atomically(const std::string& path, const std::string& text) {
  write_atomically({{path, text}});
}

void write_atomically(const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<Target> targets;
  for (const auto& [path, text] : files) {
    targets.push_back(inspect(path, path));
    for (size_t i = 0; i + 1 < targets.size(); ++i) {
      BB_CHECK(
          fs::absolute(targets[i].path).lexically_normal() !=
              fs::absolute(targets.back().path).lexically_normal(),
          "{}: written twice in one go (also as {})",
          targets.back().who,
          targets[i].who);
    }
  }
  std::vector<std::unique_ptr<TempFile>> temporaries;
  for (size_t i = 0; i < files.size(); ++i) {
    temporaries.push_back(std::make_unique<TempFile>(targets[i]));
    temporaries.back()->write(files[i].second);
  }
  for (auto& temporary : temporaries) {
    temporary->rename_into_place();
  }
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BB_CHECK(in.good(), "{}: cannot be read", path);
  std::ostringstream text;
  text << in.rdbuf();
  BB_CHECK(!in.bad(), "{}: read error", path);
  return text.str();
}

}  // namespace bb
