// Writing result files so that an interrupted or failed run never leaves a
// half-written file and never loses the one that was there.
#pragma once

#include <string>

namespace bb {

// Writes `text` to path.tmp, then renames it over `path`. Errors name the file.
void write_atomically(const std::string& path, const std::string& text);

}  // namespace bb
