#include "io/file_util.h"
#include "io/temp_siblings.h"

#include <filesystem>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.h"

namespace omni {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

// Opens with O_CLOEXEC and retries on EINTR (open can be interrupted on slow file systems such as NFS).
int open_retrying(const char* path, int flags, mode_t mode = 0) {
  int fd;
  do fd = ::open(path, flags | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  return fd;
}

std::string parent_directory(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  const int fd = open_retrying(path.c_str(), O_RDONLY);
  if (fd < 0) OMNI_FAIL("cannot open ", path, " for reading: ", errno_text(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    OMNI_FAIL("cannot stat ", path, ": ", errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    OMNI_FAIL("cannot map ", path, ": not a regular file");
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<uint64_t>(st.st_size);
  // mmap rejects a zero length; an empty file is a valid (if useless) input whose errors belong to the parser.
  if (file->size_ > 0) {
    // MAP_PRIVATE + PROT_READ: nothing we do can modify the file, and a stray write faults at once.
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      OMNI_FAIL("cannot mmap ", path, " (", file->size_, " bytes): ", errno_text(err));
    }
    file->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  return file;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::string read_text_file(const std::string& path, uint64_t max_bytes) {
  const int fd = open_retrying(path.c_str(), O_RDONLY);
  if (fd < 0) OMNI_FAIL("cannot open ", path, " for reading: ", errno_text(errno));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      OMNI_FAIL("cannot read ", path, ": ", errno_text(err));
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      ::close(fd);
      OMNI_FAIL(path, " is larger than the ", max_bytes >> 20, " MiB a text input (config, tokenizer or dataset) may ",
                "have; is it the right file?");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

uint64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) OMNI_FAIL("cannot stat ", path, ": ", errno_text(errno));
  OMNI_CHECK(S_ISREG(st.st_mode), "cannot take the size of ", path, ": not a regular file");
  return static_cast<uint64_t>(st.st_size);
}

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  OMNI_CHECK(!path_.empty(), "AtomicFileWriter: empty target path");
  // pid + a process-wide counter keep concurrent writers (threads or processes) to the same target apart, and the
  // pid lets a later run recognise what a killed one left (clean_stale_temp_files_in).
  tmp_path_ = temp_sibling(path_, "tmp").string();
  fd_ = open_retrying(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd_ < 0) OMNI_FAIL("cannot create a temporary file for ", path_, " (", tmp_path_, "): ", errno_text(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t bytes) {
  OMNI_CHECK(fd_ >= 0, "write to ", path_, " after commit or after a failed write");
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    // Linux writes at most ~2 GiB per call; larger tensors go through in several rounds.
    const ssize_t n = ::write(fd_, p, bytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      // The file is now incomplete: refuse further writes so that no one commits it.
      ::close(fd_);
      fd_ = -1;
      OMNI_FAIL("cannot write ", path_, ": ", errno_text(err));
    }
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void AtomicFileWriter::commit() {
  OMNI_CHECK(fd_ >= 0, "commit of ", path_, " after commit or after a failed write");
  // fsync before rename: otherwise a crash can leave the new name pointing at an empty or partial file.
  int rc;
  do rc = ::fsync(fd_);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    OMNI_FAIL("cannot fsync ", path_, ": ", errno_text(err));
  }
  // close can report a deferred write error (NFS); treat it as a failed write.
  rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0 && errno != EINTR) OMNI_FAIL("cannot close ", path_, ": ", errno_text(errno));
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    OMNI_FAIL("cannot rename ", tmp_path_, " to ", path_, ": ", errno_text(errno));
  committed_ = true;
  // The rename itself lives in the directory; without this fsync a crash may forget it.
  const std::string dir = parent_directory(path_);
  const int dfd = open_retrying(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd < 0) OMNI_FAIL("cannot open directory ", dir, " to fsync ", path_, ": ", errno_text(errno));
  do rc = ::fsync(dfd);
  while (rc != 0 && errno == EINTR);
  const int err = errno;
  ::close(dfd);
  // Some file systems cannot fsync a directory (EINVAL); the data itself is already safe.
  if (rc != 0 && err != EINVAL) OMNI_FAIL("cannot fsync directory ", dir, " after writing ", path_, ": ", errno_text(err));
}

void write_file_atomic(const std::string& path, std::string_view content) {
  AtomicFileWriter w(path);
  w.write(content);
  w.commit();
}

uint64_t directory_bytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

void check_output_file(const std::string& path) {
  OMNI_CHECK(!path.empty(), "the output file is an empty path");
  const std::filesystem::path p = std::filesystem::absolute(path);
  std::error_code ec;
  OMNI_CHECK(!std::filesystem::is_directory(p, ec), "output file ", path, " is a directory");
  const std::filesystem::path parent = p.parent_path();
  OMNI_CHECK(std::filesystem::is_directory(parent, ec), "output file ", path, ": the directory ", parent.string(),
             " does not exist");
  // A probe where write_file_atomic will put its temporary file: permissions alone do not tell (root, /proc).
  const std::string probe = (parent / (".omni-probe-" + std::to_string(::getpid()))).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  OMNI_CHECK(fd >= 0, "output file ", path, ": cannot create a file in ", parent.string(), ": ",
             std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace omni
