// Temporary siblings of an output: where a file or directory is built before it is renamed into place, how a
// finished one replaces an older one without a moment where neither is there, and how the leftovers of a killed
// run are recognised and cleaned up by a later one.
//
// A temporary sibling of "dir/out" is "dir/.out.<tag>-<pid>-<n>" (tag "tmp": being written; "old": an earlier
// output moved aside). The pid names the process that made it, so a later run can tell a leftover (its process
// is gone) from the work of a run still in progress (never touched).
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace omni {

// A fresh temporary sibling name of target (nothing is created).
std::filesystem::path temp_sibling(const std::filesystem::path& target, const char* tag);

// Whether name is a temporary sibling name, and if so of which target (its file name), its tag and the pid that
// made it.
struct TempSiblingName {
  std::string target;
  std::string tag;
  long pid = 0;
};
bool parse_temp_sibling(const std::string& name, TempSiblingName* out);

// Whether a process with this pid exists (one we may not signal counts as existing).
bool process_exists(long pid);

// Cleans what a killed run left beside target: temporary siblings whose process is gone are removed, except that
// when target itself is missing and an "old" sibling survives (a run killed in the middle of replacing target
// without an atomic exchange), that earlier output is first put back under target's name. Each action is
// reported through log (may be empty). Errors while cleaning are reported, never thrown: a leftover must not
// stop a new run.
void clean_stale_temp_siblings(const std::filesystem::path& target, const std::function<void(const std::string&)>& log);
// The same for the files being written inside dir (write_file_atomic's temporaries) whose process is gone.
void clean_stale_temp_files_in(const std::filesystem::path& dir, const std::function<void(const std::string&)>& log);

// Puts the finished directory `fresh` (a sibling of target) under target's name. When target exists it is
// replaced by an atomic exchange where the file system supports one (Linux renameat2 RENAME_EXCHANGE), so at
// every instant either the old or the new directory is there; elsewhere the old one is moved aside first, and
// clean_stale_temp_siblings restores it should the run be killed in between. The old directory is deleted
// afterwards. Errors name both paths.
void replace_directory(const std::filesystem::path& fresh, const std::filesystem::path& target);

}  // namespace omni
