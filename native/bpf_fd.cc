#include "bpf_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <string>

#include "errors.h"

namespace nm {

namespace {

// The anon inode names the kernel gives BPF fds (newer kernels say "bpf-link", older "bpf_link").
bool IsKind(const std::string& target, BpfFdKind kind) {
  switch (kind) {
    case BpfFdKind::kMap: return target == "anon_inode:bpf-map";
    case BpfFdKind::kProg: return target == "anon_inode:bpf-prog";
    case BpfFdKind::kLink: return target == "anon_inode:bpf_link" || target == "anon_inode:bpf-link";
  }
  return false;
}

const char* KindName(BpfFdKind kind) {
  switch (kind) {
    case BpfFdKind::kMap: return "a BPF map";
    case BpfFdKind::kProg: return "a BPF program";
    case BpfFdKind::kLink: return "a BPF link";
  }
  return "";
}

}  // namespace

void ExpectBpfFd(Napi::Env env, const char* fn, int fd, BpfFdKind kind) {
  if (fcntl(fd, F_GETFD) < 0) ThrowErrno(env, fn, errno, "fcntl", std::string(), "fd " + std::to_string(fd));
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  char target[PATH_MAX];
  ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
  if (n < 0) return;  // no /proc: let the kernel judge
  target[n] = '\0';
  if (!IsKind(target, kind)) {
    ThrowCode(env, fn, "ERR_NM_WRONG_FD_TYPE",
              "fd " + std::to_string(fd) + " is not " + KindName(kind) + " (it is " + target + ")");
  }
}

int DupCloexec(Napi::Env env, const char* fn, int fd) {
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (dup < 0) ThrowErrno(env, fn, errno, "fcntl(F_DUPFD_CLOEXEC)");
  return dup;
}

}  // namespace nm
