// PNG files of 8-bit RGB images, through libpng (Debian libpng-dev): the images `omniround image` writes (with the
// prompt and settings as iTXt text chunks) and the ones `omniround compare` reads. Writing is atomic
// (write_file_atomic); every libpng error becomes an omni::Error naming the file.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace omni {

// Row-major RGB, 3 bytes per pixel: pixels[(y · width + x) · 3 + c].
struct RgbImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;
};

using PngText = std::vector<std::pair<std::string, std::string>>;  // keyword (1-79 Latin-1 chars), UTF-8 text

void write_png(const std::string& path, const RgbImage& image, const PngText& text = {});
// Any PNG (gray, palette, 16-bit, alpha: converted to 8-bit RGB; alpha is dropped, not composited), with its
// text chunks when `text` is given. At most kMaxPngPixels pixels.
RgbImage read_png(const std::string& path, PngText* text = nullptr);

constexpr int64_t kMaxPngPixels = int64_t{1} << 28;  // 16384 x 16384

}  // namespace omni
