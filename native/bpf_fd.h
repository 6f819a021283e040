// Checking what kind of BPF object a descriptor refers to, so that mapInfo on a program
// fd (which the kernel would happily answer with program info) fails clearly.
#pragma once

#include <napi.h>

namespace nm {

enum class BpfFdKind { kMap, kProg, kLink };

// Throws EBADF when fd is not open, ERR_NM_WRONG_FD_TYPE when it is not of `kind`.
// When /proc is unavailable the kind check is skipped (the kernel still checks).
void ExpectBpfFd(Napi::Env env, const char* fn, int fd, BpfFdKind kind);

// A dup() of fd with FD_CLOEXEC set; throws on failure.
int DupCloexec(Napi::Env env, const char* fn, int fd);

}  // namespace nm
