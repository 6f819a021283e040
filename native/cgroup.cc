// cgroup v2 directories: an fd to attach cgroup BPF programs to, and the cgroup id that
// bpf_get_current_cgroup_id() reports (the kernfs node id, i.e. the file handle).
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "args.h"
#include "errors.h"
#include "register.h"
#include "unique_fd.h"

namespace nm {

namespace {

void ExpectCgroup2(Napi::Env env, const char* fn, int fd, const std::string& path) {
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0) ThrowErrno(env, fn, errno, "fstatfs", path);
  if (static_cast<unsigned long>(sfs.f_type) != CGROUP2_SUPER_MAGIC) {
    ThrowCode(env, fn, "ERR_NM_NOT_CGROUP2",
              "'" + path + "' is not in a cgroup v2 hierarchy (find the cgroup2 mount in /proc/self/mounts)",
              "fstatfs", path);
  }
}

Napi::Value CgroupOpen(const Napi::CallbackInfo& info) {
  Args args(info, "cgroupOpen", 1);
  Napi::Env env = args.env();
  std::string path = args.String(0, "path");
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) ThrowErrno(env, args.fn(), errno, "open", path);
  ExpectCgroup2(env, args.fn(), fd.get(), path);
  return Napi::Number::New(env, fd.release());
}

Napi::Value CgroupId(const Napi::CallbackInfo& info) {
  Args args(info, "cgroupId", 1);
  Napi::Env env = args.env();
  std::string path = args.String(0, "path");
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) ThrowErrno(env, args.fn(), errno, "open", path);
  ExpectCgroup2(env, args.fn(), fd.get(), path);

  // kernfs encodes the node id as an 8-byte handle: exactly the cgroup id.
  union {
    struct file_handle fh;
    char storage[sizeof(struct file_handle) + 64];
  } handle;
  std::memset(&handle, 0, sizeof(handle));
  handle.fh.handle_bytes = 64;
  int mount_id = 0;
  if (name_to_handle_at(fd.get(), "", &handle.fh, &mount_id, AT_EMPTY_PATH) == 0 && handle.fh.handle_bytes == 8) {
    uint64_t id;
    std::memcpy(&id, handle.fh.f_handle, sizeof(id));
    return Napi::BigInt::New(env, id);
  }
  // Fallback: the directory's inode number (equal to the id on 64-bit kernels).
  struct stat st;
  if (fstat(fd.get(), &st) != 0) ThrowErrno(env, args.fn(), errno, "fstat", path);
  return Napi::BigInt::New(env, static_cast<uint64_t>(st.st_ino));
}

}  // namespace

void RegisterCgroup(Napi::Env env, Napi::Object exports) {
  exports.Set("cgroupOpen", Napi::Function::New(env, CgroupOpen, "cgroupOpen"));
  exports.Set("cgroupId", Napi::Function::New(env, CgroupId, "cgroupId"));
}

}  // namespace nm
