// SHA-256 of a file, for checking data and model checksums.
#pragma once

#include <string>

namespace bb {

// Lower-case hex digest of the file's bytes; a file that cannot be read is a
// bb::Error naming it.
std::string sha256_file(const std::string& path);
// Digest of a byte string (tests use the FIPS 180-2 examples).
std::string sha256_bytes(const std::string& bytes);

}  // namespace bb
