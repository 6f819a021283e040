// netnsOpen: opening /run/netns/NAME or /proc/PID/ns/net, checked to be a network
// namespace. ENOENT keeps its code and path: the agent reads it as "the pod's network
// namespace vanished".
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "args.h"
#include "errors.h"
#include "register.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

namespace nm {

void ExpectNetnsFd(Napi::Env env, const char* fn, int fd, const std::string& path) {
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0) ThrowErrno(env, fn, errno, "fstatfs", path, path.empty() ? "fd " + std::to_string(fd) : "");
  std::string what = path.empty() ? "fd " + std::to_string(fd) : "'" + path + "'";
  if (static_cast<unsigned long>(sfs.f_type) != NSFS_MAGIC) {
    ThrowCode(env, fn, "ERR_NM_NOT_A_NETNS",
              what + " is not a namespace file (expected /run/netns/NAME or /proc/PID/ns/net)", "fstatfs", path);
  }
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type < 0) ThrowErrno(env, fn, errno, "ioctl(NS_GET_NSTYPE)", path);
  if (type != CLONE_NEWNET) {
    ThrowCode(env, fn, "ERR_NM_NOT_A_NETNS", what + " is a namespace, but not a network namespace", "ioctl", path);
  }
}

namespace {

Napi::Value NetnsOpen(const Napi::CallbackInfo& info) {
  Args args(info, "netnsOpen", 1);
  Napi::Env env = args.env();
  std::string path = args.String(0, "path");
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, args.fn(), errno, "open", path);
  try {
    ExpectNetnsFd(env, args.fn(), fd, path);
  } catch (...) {
    close(fd);
    throw;
  }
  return Napi::Number::New(env, fd);
}

}  // namespace

void RegisterNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsOpen", Napi::Function::New(env, NetnsOpen, "netnsOpen"));
}

}  // namespace nm
