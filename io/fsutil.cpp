#include "io/fsutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "scoreflow/error.h"

namespace scoreflow::io {
namespace fs = std::filesystem;

namespace {

std::string errno_text(int err) { return std::strerror(err); }

/// The directory a new file at `path` would live in ("." for a bare file name).
std::string parent_dir(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

/// A unique sibling name: pid + a process-wide counter, so concurrent writers (threads or
/// processes) never share a temporary file.
std::string temp_name_for(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

}  // namespace

AtomicFile::AtomicFile(const std::string& path) : path_(path), temp_(temp_name_for(path)) {
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) fail("cannot write '", path_, "': ", errno_text(errno));
}

AtomicFile::~AtomicFile() {
  // Not committed: an exception is unwinding; leave no partial file behind.
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  if (fd_ < 0) fail("cannot write '", path_, "': file already committed");
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write '", path_, "': ", errno_text(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) fail("cannot write '", path_, "': file already committed");
  // fsync before rename: otherwise a crash can leave the new name pointing at an empty file.
  if (::fsync(fd_) != 0) fail("cannot write '", path_, "': fsync: ", errno_text(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("cannot write '", path_, "': close: ", errno_text(errno));
  if (::rename(temp_.c_str(), path_.c_str()) != 0) fail("cannot write '", path_, "': rename: ", errno_text(errno));
  committed_ = true;
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  AtomicFile file(path);
  file.write(data, size);
  file.commit();
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

void read_file_chunks(const std::string& path, const std::function<void(const uint8_t*, size_t)>& consume) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot read '", path, "': ", errno_text(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    const int err = S_ISDIR(st.st_mode) ? EISDIR : errno;
    ::close(fd);
    fail("cannot read '", path, "': ", errno_text(err));
  }
  uint8_t chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      fail("cannot read '", path, "': ", errno_text(err));
    }
    try {
      consume(chunk, static_cast<size_t>(n));
    } catch (...) {
      ::close(fd);
      throw;
    }
  }
  ::close(fd);
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::vector<uint8_t> bytes;
  read_file_chunks(path, [&](const uint8_t* data, size_t n) { bytes.insert(bytes.end(), data, data + n); });
  return bytes;
}

void check_writable(const std::string& path) {
  std::error_code ec;
  // An existing directory is itself the place to write into (--out-dir); otherwise the parent.
  const std::string dir = fs::is_directory(path, ec) ? path : parent_dir(path);
  if (!fs::exists(dir, ec)) fail("cannot write '", path, "': directory '", dir, "' does not exist");
  if (!fs::is_directory(dir, ec)) fail("cannot write '", path, "': '", dir, "' is not a directory");
  // Probe by creating a file: access(W_OK) says yes to root on read-only mounts and to
  // directories whose ACLs say no.
  const std::string probe = temp_name_for((fs::path(dir) / ".scoreflow-probe").string());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) fail("cannot write '", path, "': directory '", dir, "': ", errno_text(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

namespace {

/// `path` with its folder resolved (realpath) when that folder exists, else lexically normalised;
/// two outputs with the same key are the same file.
std::string identity(const std::string& path) {
  const fs::path p = fs::path(path).lexically_normal();
  const fs::path name = p.filename().empty() ? p.parent_path().filename() : p.filename();
  const fs::path folder = p.filename().empty() ? p.parent_path().parent_path() : p.parent_path();
  char resolved[PATH_MAX];
  if (::realpath(folder.empty() ? "." : folder.c_str(), resolved)) return (fs::path(resolved) / name).string();
  return fs::absolute(p).lexically_normal().string();
}

}  // namespace

void check_outputs(const std::vector<OutputPath>& outputs) {
  std::vector<std::pair<std::string, const OutputPath*>> seen;
  for (const OutputPath& o : outputs) {
    if (o.path.empty()) continue;
    std::error_code ec;
    const bool exists = fs::exists(o.path, ec), is_dir = fs::is_directory(o.path, ec);
    try {
      if (!o.directory) {
        if (is_dir) fail("is a directory; give the path of the file to write");
        check_writable(o.path);
      } else {
        if (exists && !is_dir) fail("exists and is not a directory");
        std::string dir = o.path;  // the folder itself, or the nearest existing one above it
        while (!fs::exists(dir, ec)) {
          const std::string up = parent_dir(dir);
          if (up == dir) break;
          dir = up;
        }
        if (!fs::is_directory(dir, ec)) fail("cannot be created: '", dir, "' is not a directory");
        check_writable(dir);
      }
    } catch (const Error& e) {
      fail(Field{o.field.c_str()}, " '", o.path, "': ", e.what());
    }
    const std::string key = identity(o.path);
    for (const auto& [other_key, other] : seen)
      if (other_key == key)
        fail(Field{other->field.c_str()}, " '", other->path, "' and ", Field{o.field.c_str()}, " '", o.path,
             "' are the same ", o.directory || other->directory ? "path" : "file", "; give each output its own");
    seen.emplace_back(key, &o);
  }
}

void make_dirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create directory '", dir, "': ", ec.message());
  if (!fs::is_directory(dir, ec)) fail("cannot create directory '", dir, "': a file is in the way");
}

std::vector<std::string> list_dir(const std::string& dir, bool* ok) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (ok) *ok = d != nullptr;
  if (!d) return names;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  return names;
}

bool is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> walk_files(const std::string& dir) {
  bool ok = false;
  std::vector<std::string> top = list_dir(dir, &ok);
  if (!ok) fail("cannot list folder '", dir, "': ", std::strerror(errno));
  std::vector<std::string> files, pending;
  for (const std::string& name : top) pending.push_back(dir + "/" + name);
  while (!pending.empty()) {
    const std::string path = pending.back();
    pending.pop_back();
    // Symlinks to files count; symlinks to folders are not followed (no cycles).
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) continue;
    const bool link = S_ISLNK(st.st_mode);
    if (link && ::stat(path.c_str(), &st) != 0) continue;
    if (S_ISREG(st.st_mode)) {
      files.push_back(path);
    } else if (S_ISDIR(st.st_mode) && !link) {
      for (const std::string& name : list_dir(path)) pending.push_back(path + "/" + name);  // unreadable: skipped
    }
  }
  return files;
}

std::string remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT ? "" : path + ": " + std::strerror(errno);
  if (S_ISDIR(st.st_mode)) {
    for (const std::string& name : list_dir(path)) {
      std::string err = remove_tree(path + "/" + name);
      if (!err.empty()) return err;
    }
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return path + ": " + std::strerror(errno);
  } else if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return path + ": " + std::strerror(errno);
  }
  return "";
}

}  // namespace scoreflow::io
