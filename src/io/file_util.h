// Files: read-only memory maps and atomic writes (temporary file in the same directory, fsync, rename, fsync of
// the directory), so a reader never sees a half-written file and an interrupted job loses nothing written before.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace omni {

class MappedFile {
 public:
  // Maps the whole file read-only; errors name the path and the errno text.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

// The most a text input (config, tokenizer, dataset) may hold: far above any real one, and it stops a read of
// /dev/zero or a mistaken multi-gigabyte file with a message instead of exhausting memory.
inline constexpr uint64_t kMaxTextFileBytes = uint64_t{1} << 30;
// The whole file as bytes; more than max_bytes is an error naming the file and the limit.
std::string read_text_file(const std::string& path, uint64_t max_bytes = kMaxTextFileBytes);
bool file_exists(const std::string& path);
uint64_t file_size(const std::string& path);
// Checks, before any work, that a file can be written at `path` (atomically, by write_file_atomic): the path is not
// empty and not a directory, its parent directory exists, and a file can be created there. Errors name the path.
void check_output_file(const std::string& path);
// The bytes of every regular file under dir (recursively).
uint64_t directory_bytes(const std::string& dir);

// Writes a file so that it appears complete or not at all.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();  // removes the temporary file unless commit() succeeded
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t bytes);  // errors (e.g. ENOSPC) name the target path
  void write(std::string_view s) { write(s.data(), s.size()); }
  void commit();  // fsync, rename over the target, fsync the directory

 private:
  std::string path_, tmp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

void write_file_atomic(const std::string& path, std::string_view content);

}  // namespace omni
