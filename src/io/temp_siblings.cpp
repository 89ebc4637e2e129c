#include "io/temp_siblings.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <vector>

#include "core/error.h"

namespace omni {

namespace fs = std::filesystem;

namespace {

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// renameat2(RENAME_EXCHANGE): swaps two paths in one step. False (errno set) where the kernel or the file system
// cannot (EINVAL, ENOSYS); glibc has the wrapper since 2.28.
bool exchange_paths(const fs::path& a, const fs::path& b) {
  return ::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0;
}

}  // namespace

fs::path temp_sibling(const fs::path& target, const char* tag) {
  static std::atomic<uint64_t> counter{0};
  fs::path t = target;
  if (t.filename().empty()) t = t.parent_path();  // "dir/" -> "dir"
  // Built by appending: gcc 12 flags `"." + std::string` with a false -Wrestrict.
  std::string name = ".";
  name.append(t.filename().string()).append(".").append(tag).append("-");
  name.append(std::to_string(::getpid())).append("-").append(std::to_string(counter++));
  return t.parent_path() / name;
}

bool parse_temp_sibling(const std::string& name, TempSiblingName* out) {
  // ".<target>.<tag>-<pid>-<n>": split at the last two dashes, then at the dot before the tag.
  if (name.size() < 2 || name[0] != '.') return false;
  const size_t dash2 = name.rfind('-');
  if (dash2 == std::string::npos || dash2 == 0) return false;
  const size_t dash1 = name.rfind('-', dash2 - 1);
  if (dash1 == std::string::npos) return false;
  const size_t dot = name.rfind('.', dash1);
  if (dot == std::string::npos || dot <= 1) return false;
  const std::string tag = name.substr(dot + 1, dash1 - dot - 1), pid = name.substr(dash1 + 1, dash2 - dash1 - 1),
                    n = name.substr(dash2 + 1);
  if ((tag != "tmp" && tag != "old") || !all_digits(pid) || pid.size() > 9 || !all_digits(n)) return false;
  out->target = name.substr(1, dot - 1);
  out->tag = tag;
  out->pid = std::stol(pid);
  return out->pid > 0;
}

bool process_exists(long pid) {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno != ESRCH;  // EPERM: it exists, under another user
}

namespace {

// The temporary siblings in dir that `wanted` accepts and whose process is gone.
std::vector<std::pair<fs::path, TempSiblingName>> stale_siblings(
    const fs::path& dir, const std::function<bool(const TempSiblingName&)>& wanted) {
  std::vector<std::pair<fs::path, TempSiblingName>> stale;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return stale;  // no directory yet: nothing can be left there
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    TempSiblingName parsed;
    if (!parse_temp_sibling(it->path().filename().string(), &parsed) || !wanted(parsed)) continue;
    if (parsed.pid == ::getpid() || process_exists(parsed.pid)) continue;  // a run in progress: not ours to touch
    stale.push_back({it->path(), parsed});
  }
  return stale;
}

void remove_leftovers(const std::vector<std::pair<fs::path, TempSiblingName>>& stale,
                      const std::function<void(const std::string&)>& say) {
  for (const auto& [path, parsed] : stale) {
    if (path.empty()) continue;
    std::error_code ec;
    fs::remove_all(path, ec);
    if (ec)
      say("warning: cannot remove the leftover " + path.string() + ": " + ec.message());
    else
      say("removed " + path.string() + " (left by process " + std::to_string(parsed.pid) + ", no longer running)");
  }
}

}  // namespace

void clean_stale_temp_siblings(const fs::path& target_in, const std::function<void(const std::string&)>& log) {
  auto say = [&](const std::string& s) {
    if (log) log(s);
  };
  if (target_in.empty()) return;  // an empty output path is refused by the caller's checks, not cleaned around
  fs::path target = fs::absolute(target_in).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();
  const std::string target_name = target.filename().string();
  auto stale = stale_siblings(target.parent_path(), [&](const TempSiblingName& n) { return n.target == target_name; });
  // A target killed mid-replacement: put the earlier output back before anything else is removed.
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(target, ec))) {
    for (auto& [path, parsed] : stale) {
      if (parsed.tag != "old") continue;
      fs::rename(path, target, ec);
      if (ec) {
        say("warning: cannot restore " + path.string() + " to " + target.string() + ": " + ec.message());
        return;  // keep every leftover: the old output must not be deleted by mistake
      }
      say("restored " + target.string() + " from " + path.filename().string() + " (left by process " +
          std::to_string(parsed.pid) + ", killed while replacing it)");
      path.clear();
      break;
    }
  }
  remove_leftovers(stale, say);
}

void clean_stale_temp_files_in(const fs::path& dir, const std::function<void(const std::string&)>& log) {
  auto say = [&](const std::string& s) {
    if (log) log(s);
  };
  remove_leftovers(stale_siblings(dir, [](const TempSiblingName& n) { return n.tag == "tmp"; }), say);
}

void replace_directory(const fs::path& fresh, const fs::path& target) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(target, ec))) {
    fs::rename(fresh, target, ec);
    OMNI_CHECK(!ec, "cannot rename ", fresh.string(), " to ", target.string(), ": ", ec.message());
    return;
  }
  if (exchange_paths(fresh, target)) {
    // `fresh` now holds the old output; a kill from here on leaves a leftover that the next run removes.
    fs::remove_all(fresh, ec);
    OMNI_CHECK(!ec, "replaced ", target.string(), " but cannot remove the old copy ", fresh.string(), ": ",
               ec.message());
    return;
  }
  const int err = errno;
  OMNI_CHECK(err == EINVAL || err == ENOSYS || err == ENOTSUP, "cannot exchange ", fresh.string(), " with ",
             target.string(), ": ", std::strerror(err));
  // No atomic exchange here: move the old output aside first. Killed in between, the next run puts it back.
  const fs::path old = temp_sibling(target, "old");
  fs::rename(target, old, ec);
  OMNI_CHECK(!ec, "cannot move the existing ", target.string(), " aside: ", ec.message());
  fs::rename(fresh, target, ec);
  if (ec) {
    std::error_code ec2;
    fs::rename(old, target, ec2);
    OMNI_FAIL("cannot rename ", fresh.string(), " to ", target.string(), ": ", ec.message());
  }
  fs::remove_all(old, ec);
  OMNI_CHECK(!ec, "replaced ", target.string(), " but cannot remove the old copy ", old.string(), ": ", ec.message());
}

}  // namespace omni
