// Network namespace descriptors: checking that an fd really is a network namespace.
#pragma once

#include <napi.h>

#include <string>

namespace nm {

// Throws ERR_NM_NOT_A_NETNS (with `path` when given) unless fd refers to a network
// namespace; EBADF when fd is not open.
void ExpectNetnsFd(Napi::Env env, const char* fn, int fd, const std::string& path = std::string());

}  // namespace nm
