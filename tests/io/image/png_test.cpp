// PNG writing and reading (io/image/png.h): our files read back bit for bit with their text chunks; files written
// independently (tools/make_png_fixtures.py: Python's zlib and struct, no libpng) in other color types read as the
// generator's RGB values; broken files give errors naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>

#include "core/error.h"
#include "io/file_util.h"
#include "io/image/png.h"

namespace omni {
namespace {

namespace fs = std::filesystem;
const std::string kData = std::string(OMNI_SOURCE_DIR) + "/tests/data/png/";
const std::string kTmp = std::string(OMNI_BINARY_DIR) + "/png_test.tmp";

RgbImage gradient(int64_t w, int64_t h) {
  RgbImage img{w, h, std::vector<uint8_t>(static_cast<size_t>(w * h * 3))};
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        img.pixels[static_cast<size_t>((y * w + x) * 3 + c)] = static_cast<uint8_t>((x * 37 + y * 11 + c * 85) & 255);
  return img;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class Png : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::remove_all(kTmp);
    fs::create_directories(kTmp);
  }
};

TEST_F(Png, RoundTripKeepsPixelsAndUtf8Text) {
  const RgbImage img = gradient(37, 23);
  const PngText text = {{"prompt", "a red fox — über 東京"}, {"omniround", "steps=4 seed=7"}};
  write_png(kTmp + "/a.png", img, text);
  PngText back_text;
  const RgbImage back = read_png(kTmp + "/a.png", &back_text);
  EXPECT_EQ(back.width, 37);
  EXPECT_EQ(back.height, 23);
  EXPECT_EQ(back.pixels, img.pixels);
  EXPECT_EQ(back_text, text);
}

TEST_F(Png, IndependentlyWrittenFilesReadAsTheirGeneratorSays) {
  // Each fixture NAME.png comes with NAME.rgb: the expected 8-bit RGB bytes, row-major (after dropping alpha,
  // expanding gray and palette, stripping 16-bit to its high byte).
  int read = 0;
  for (const char* name : {"rgb8", "rgba8", "gray8", "gray2", "palette", "rgb16", "filters"}) {
    const RgbImage img = read_png(kData + name + ".png");
    const std::string want = read_text_file(kData + name + ".rgb");
    ASSERT_EQ(img.pixels.size(), want.size()) << name;
    EXPECT_EQ(0, std::memcmp(img.pixels.data(), want.data(), want.size())) << name;
    ++read;
  }
  EXPECT_EQ(read, 7);
}

TEST_F(Png, BrokenFilesAreErrorsNamingTheFile) {
  std::ofstream(kTmp + "/text.png") << "not a png at all";
  EXPECT_NE(error_of([&] { read_png(kTmp + "/text.png"); }).find("text.png: not a PNG file"), std::string::npos);
  const std::string good = read_text_file(kData + "rgb8.png");
  std::ofstream(kTmp + "/cut.png", std::ios::binary) << good.substr(0, good.size() / 2);
  const std::string e = error_of([&] { read_png(kTmp + "/cut.png"); });
  EXPECT_NE(e.find("cut.png: cannot read the PNG"), std::string::npos) << e;
  std::string crc = good;
  crc[40] ^= 0x55;  // inside IDAT (or IHDR): a CRC or zlib error
  std::ofstream(kTmp + "/crc.png", std::ios::binary) << crc;
  EXPECT_NE(error_of([&] { read_png(kTmp + "/crc.png"); }).find("crc.png: cannot read the PNG"), std::string::npos);
  EXPECT_NE(error_of([&] { write_png(kTmp + "/bad.png", RgbImage{2, 2, std::vector<uint8_t>(5)}); }).find("bad.png"),
            std::string::npos);
}

}  // namespace
}  // namespace omni
