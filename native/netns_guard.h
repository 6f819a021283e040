// Entering a network namespace on the calling thread for as short as possible.
//
// The constructor remembers the thread's own namespace and setns()es into the target;
// the destructor ALWAYS goes back. If going back fails the process aborts: a JS thread
// left inside a pod's namespace would silently create every later socket there.
#pragma once

#include <napi.h>

namespace nm {

class NetnsGuard {
 public:
  // Throws (leaving the thread where it was) when the namespace cannot be entered.
  NetnsGuard(Napi::Env env, const char* fn, int target_netns_fd);
  ~NetnsGuard();
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

 private:
  int self_fd_;
};

}  // namespace nm
