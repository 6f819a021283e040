#include "netns_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "errors.h"

namespace nm {

NetnsGuard::NetnsGuard(Napi::Env env, const char* fn, int target_netns_fd) {
  self_fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self_fd_ < 0) ThrowErrno(env, fn, errno, "open", "/proc/thread-self/ns/net");
  if (setns(target_netns_fd, CLONE_NEWNET) != 0) {
    int err = errno;
    close(self_fd_);
    ThrowErrno(env, fn, err, "setns", std::string(), "entering the network namespace of fd " + std::to_string(target_netns_fd));
  }
}

NetnsGuard::~NetnsGuard() {
  if (setns(self_fd_, CLONE_NEWNET) != 0) {
    int err = errno;
    std::fprintf(stderr,
                 "nodemesh_native: FATAL: could not return the thread to its own network namespace "
                 "(setns: %s); aborting rather than running on inside a pod's namespace\n",
                 strerrordesc_np(err));
    std::abort();
  }
  close(self_fd_);
}

}  // namespace nm
