#include "core/io.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace bb {

void write_atomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    BB_CHECK(out.good(), "{}: cannot open for writing", temporary);
    out << text;
    out.flush();
    if (!out.good()) {
      out.close();
      std::filesystem::remove(temporary);
      throw Error(fmt::format("{}: write error", temporary));
    }
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) {
    std::filesystem::remove(temporary);
    throw Error(fmt::format("{}: cannot replace ({})", path, error.message()));
  }
}

}  // namespace bb
