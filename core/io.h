// Writing result files so that an interrupted or failed run never leaves a
// half-written file and never loses the one that was there.
//
// Rules for every output path (every command's --out goes through them):
//  - a symbolic link is written through: the file it finally points to is
//    replaced and the link stays (a dangling link creates its target);
//  - the folder must exist and accept new files (checked by creating and
//    removing a probe file there);
//  - a folder, or a special file (FIFO, device, socket), is refused, never
//    replaced; so is an existing file without write permission;
//  - the new contents go to a temporary file made with mkstemp in the same
//    folder (".NAME.tmp.XXXXXX": a user's own NAME.tmp is never touched),
//    flushed to disk and renamed over the target; it takes the mode (and, for
//    root, the owner) of the file it replaces, else 0666 less the umask; it is
//    removed on every failure path. A run killed with SIGKILL while writing
//    can leave such a temporary file, never a partial NAME.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace bb {

// Where writing `path` lands: `path` with symbolic links in its last
// component followed to the final target (relative links resolve against the
// link's folder). Loops and chains longer than 40 links are a bb::Error.
std::string output_target(const std::string& path);

// Throws a one-line bb::Error "OPTION PATH: ..." unless write_atomically(path)
// could succeed: the rules above. Call it before any work starts.
void check_output_path(const std::string& path, const std::string& option);

// Writes `text` to a temporary file in the target's folder, then renames it
// over the target (output_target(path)). Errors name the file.
void write_atomically(const std::string& path, const std::string& text);

// Several files together: every temporary file is written first, and only
// then are they renamed into place, in order. A failure while writing leaves
// every target as it was; only a failing rename (after all the writing
// succeeded) can leave the files before it replaced.
void write_atomically(const std::vector<std::pair<std::string, std::string>>& files);

// The whole contents of the file `path` (the caller has checked that it is a
// file). A file that cannot be opened or read is a bb::Error naming it.
std::string read_text_file(const std::string& path);

}  // namespace bb
