// Building JS errors shaped like Node's system errors: `code` (errno name such as 'ENOENT'
// or an 'ERR_NM_*' code), `errno` (positive, 0 when not an OS error), `syscall` and,
// when one is involved, `path`. Every Throw* function throws a C++ Napi::Error, which
// node-addon-api (NAPI_CPP_EXCEPTIONS) turns into a JS exception.
#pragma once

#include <napi.h>

#include <string>

namespace nm {

// 'ENOENT' for ENOENT; kernel-internal values (ENOTSUPP 524, ...) by their kernel names;
// 'ERRNO_<n>' when the value has no name.
std::string ErrnoName(int err);
// Human description ("No such file or directory").
std::string ErrnoDescription(int err);

struct ErrorSpec {
  std::string code;     // errno name or ERR_NM_*
  int err = 0;          // positive errno or 0
  std::string syscall;  // 'open', 'bpf_object__load', ...
  std::string path;     // empty: no `path` property
  std::string message;  // the whole message
};

[[noreturn]] void Throw(Napi::Env env, const ErrorSpec& spec);

// "<fn>: <syscall> '<path>' failed: <CODE> (<description>)[; <detail>]".
// `err` is positive or negative (libbpf style); its absolute value is used.
[[noreturn]] void ThrowErrno(Napi::Env env, const char* fn, int err, const std::string& syscall,
                             const std::string& path = std::string(),
                             const std::string& detail = std::string());

// An ERR_NM_* error (errno 0 unless given).
[[noreturn]] void ThrowCode(Napi::Env env, const char* fn, const std::string& code,
                            const std::string& message, const std::string& syscall = std::string(),
                            const std::string& path = std::string(), int err = 0);

// ERR_NM_INVALID_ARGUMENT, syscall = fn.
[[noreturn]] void ThrowInvalidArgument(Napi::Env env, const char* fn, const std::string& message);

}  // namespace nm
