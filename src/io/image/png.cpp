#include "io/image/png.h"

#include <png.h>

#include <csetjmp>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "io/file_util.h"

namespace omni {
namespace {

// libpng reports errors by longjmp to the setjmp of the calling function: these functions hold no object with a
// destructor between setjmp and the libpng calls, keep the message here, and the caller turns it into an Error.
struct PngCallbacks {
  std::string error;
  std::string out;       // written bytes
  const uint8_t* in = nullptr;
  size_t in_size = 0, in_pos = 0;
  std::vector<png_bytep> rows;  // here, not in decode(): a longjmp must not skip a destructor
};

void on_error(png_structp png, png_const_charp message) {
  auto* cb = static_cast<PngCallbacks*>(png_get_error_ptr(png));
  cb->error = message ? message : "unknown libpng error";
  png_longjmp(png, 1);
}
void on_warning(png_structp, png_const_charp) {}

void on_write(png_structp png, png_bytep data, size_t n) {
  static_cast<PngCallbacks*>(png_get_io_ptr(png))->out.append(reinterpret_cast<const char*>(data), n);
}
void on_flush(png_structp) {}

void on_read(png_structp png, png_bytep data, size_t n) {
  auto* cb = static_cast<PngCallbacks*>(png_get_io_ptr(png));
  if (cb->in_size - cb->in_pos < n) png_error(png, "the file ends early (truncated PNG)");
  std::memcpy(data, cb->in + cb->in_pos, n);
  cb->in_pos += n;
}

// Returns false with cb.error set on a libpng error.
bool encode(PngCallbacks& cb, const RgbImage& img, png_text* text, int num_text, const png_bytep* rows) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &cb, on_error, on_warning);
  if (!png) {
    cb.error = "cannot create the libpng writer";
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    if (cb.error.empty()) cb.error = "cannot create the libpng info";
    png_destroy_write_struct(&png, info ? &info : nullptr);
    return false;
  }
  png_set_write_fn(png, &cb, on_write, on_flush);
  png_set_IHDR(png, info, static_cast<png_uint_32>(img.width), static_cast<png_uint_32>(img.height), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (num_text > 0) png_set_text(png, info, text, num_text);
  png_set_rows(png, info, const_cast<png_bytepp>(rows));
  png_write_png(png, info, PNG_TRANSFORM_IDENTITY, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

struct Decoded {
  png_uint_32 width = 0, height = 0;
};

// Reads the header into d and the pixels as 8-bit RGB (and the text chunks, when asked).
bool decode(PngCallbacks& cb, Decoded& d, std::vector<uint8_t>* pixels, PngText* text) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &cb, on_error, on_warning);
  if (!png) {
    cb.error = "cannot create the libpng reader";
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    if (cb.error.empty()) cb.error = "cannot create the libpng info";
    png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    return false;
  }
  png_set_read_fn(png, &cb, on_read);
  png_set_user_limits(png, 1u << 16, 1u << 16);
  png_read_info(png, info);
  d.width = png_get_image_width(png, info);
  d.height = png_get_image_height(png, info);
  if (static_cast<int64_t>(d.width) * d.height > kMaxPngPixels) png_error(png, "more pixels than allowed (2^28)");
  if (pixels) {
    const png_byte color = png_get_color_type(png, info);
    if (png_get_bit_depth(png, info) == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) {
      if (png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
      png_set_gray_to_rgb(png);
    }
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != static_cast<size_t>(d.width) * 3) png_error(png, "unexpected row layout");
    pixels->resize(static_cast<size_t>(d.width) * d.height * 3);
    cb.rows.resize(d.height);
    for (png_uint_32 y = 0; y < d.height; ++y) cb.rows[y] = pixels->data() + static_cast<size_t>(y) * d.width * 3;
    png_read_image(png, cb.rows.data());
    png_read_end(png, info);
    if (text) {
      png_textp t = nullptr;
      const int n = png_get_text(png, info, &t, nullptr);
      for (int i = 0; i < n; ++i)
        text->emplace_back(t[i].key, t[i].text ? std::string(t[i].text, t[i].itxt_length ? t[i].itxt_length
                                                                                          : t[i].text_length)
                                               : std::string());
    }
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

}  // namespace

void write_png(const std::string& path, const RgbImage& image, const PngText& text) {
  OMNI_CHECK(image.width > 0 && image.height > 0 && image.width <= (1 << 16) && image.height <= (1 << 16), path,
             ": image size ", image.width, "x", image.height, " is outside 1..65536");
  OMNI_CHECK(static_cast<int64_t>(image.pixels.size()) == image.width * image.height * 3, path, ": ",
             image.pixels.size(), " bytes for a ", image.width, "x", image.height, " RGB image");
  std::vector<png_text> chunks(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const std::string& key = text[i].first;
    OMNI_CHECK(!key.empty() && key.size() <= 79, path, ": PNG text keyword \"", key, "\" must have 1 to 79 characters");
    std::memset(&chunks[i], 0, sizeof(png_text));
    chunks[i].compression = PNG_ITXT_COMPRESSION_NONE;  // iTXt: UTF-8 text (a prompt may hold any character)
    chunks[i].key = const_cast<char*>(key.c_str());
    chunks[i].text = const_cast<char*>(text[i].second.c_str());
    chunks[i].itxt_length = text[i].second.size();
  }
  std::vector<png_bytep> rows(static_cast<size_t>(image.height));
  for (int64_t y = 0; y < image.height; ++y)
    rows[static_cast<size_t>(y)] = const_cast<png_bytep>(image.pixels.data() + y * image.width * 3);
  PngCallbacks cb;
  OMNI_CHECK(encode(cb, image, chunks.data(), static_cast<int>(chunks.size()), rows.data()), path,
             ": cannot encode the PNG: ", cb.error);
  write_file_atomic(path, cb.out);
}

RgbImage read_png(const std::string& path, PngText* text) {
  const std::string bytes = read_text_file(path, uint64_t{1} << 32);
  OMNI_CHECK(bytes.size() >= 8 && png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) == 0, path,
             ": not a PNG file (no PNG signature)");
  PngCallbacks cb;
  cb.in = reinterpret_cast<const uint8_t*>(bytes.data());
  cb.in_size = bytes.size();
  Decoded d;
  RgbImage img;
  OMNI_CHECK(decode(cb, d, &img.pixels, text), path, ": cannot read the PNG: ", cb.error);
  img.width = d.width;
  img.height = d.height;
  return img;
}

}  // namespace omni
