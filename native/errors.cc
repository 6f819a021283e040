#include "errors.h"

#include <string.h>

#include <cstdlib>

namespace nm {

namespace {

// Values the kernel uses internally that can leak out of bpf(2) (include/linux/errno.h).
struct KernelErrno {
  int value;
  const char* name;
  const char* description;
};

constexpr KernelErrno kKernelErrnos[] = {
    {512, "ERESTARTSYS", "Restart system call (kernel internal)"},
    {513, "ERESTARTNOINTR", "Restart system call (kernel internal)"},
    {514, "ERESTARTNOHAND", "Restart if no handler (kernel internal)"},
    {515, "ENOIOCTLCMD", "No ioctl command (kernel internal)"},
    {516, "ERESTART_RESTARTBLOCK", "Restart by calling sys_restart_syscall (kernel internal)"},
    {517, "EPROBE_DEFER", "Driver requests probe retry (kernel internal)"},
    {518, "EOPENSTALE", "Open found a stale dentry (kernel internal)"},
    {519, "ENOPARAM", "Parameter not supported (kernel internal)"},
    {521, "EBADHANDLE", "Illegal NFS file handle (kernel internal)"},
    {522, "ENOTSYNC", "Update synchronization mismatch (kernel internal)"},
    {523, "EBADCOOKIE", "Cookie is stale (kernel internal)"},
    {524, "ENOTSUPP", "Operation is not supported (kernel internal ENOTSUPP)"},
    {525, "ETOOSMALL", "Buffer or request is too small (kernel internal)"},
    {526, "ESERVERFAULT", "An untranslatable error occurred (kernel internal)"},
    {527, "EBADTYPE", "Type not supported by server (kernel internal)"},
    {528, "EJUKEBOX", "Request initiated, but will not complete before timeout (kernel internal)"},
    {529, "EIOCBQUEUED", "iocb queued, will get completion event (kernel internal)"},
    {530, "ERECALLCONFLICT", "Conflict with recalled state (kernel internal)"},
};

const KernelErrno* FindKernelErrno(int err) {
  for (const auto& k : kKernelErrnos) {
    if (k.value == err) return &k;
  }
  return nullptr;
}

}  // namespace

std::string ErrnoName(int err) {
  err = std::abs(err);
  if (const char* name = strerrorname_np(err)) return name;
  if (const KernelErrno* k = FindKernelErrno(err)) return k->name;
  return "ERRNO_" + std::to_string(err);
}

std::string ErrnoDescription(int err) {
  err = std::abs(err);
  if (const char* desc = strerrordesc_np(err)) return desc;
  if (const KernelErrno* k = FindKernelErrno(err)) return k->description;
  return "Unknown error " + std::to_string(err);
}

void Throw(Napi::Env env, const ErrorSpec& spec) {
  Napi::Error error = Napi::Error::New(env, spec.message);
  Napi::Object obj = error.Value();
  obj.Set("code", Napi::String::New(env, spec.code));
  obj.Set("errno", Napi::Number::New(env, spec.err));
  obj.Set("syscall", Napi::String::New(env, spec.syscall));
  if (!spec.path.empty()) obj.Set("path", Napi::String::New(env, spec.path));
  throw error;
}

void ThrowErrno(Napi::Env env, const char* fn, int err, const std::string& syscall,
                const std::string& path, const std::string& detail) {
  err = std::abs(err);
  ErrorSpec spec;
  spec.code = ErrnoName(err);
  spec.err = err;
  spec.syscall = syscall;
  spec.path = path;
  spec.message = std::string(fn) + ": " + syscall;
  if (!path.empty()) spec.message += " '" + path + "'";
  spec.message += " failed: " + spec.code + " (" + ErrnoDescription(err) + ")";
  if (!detail.empty()) spec.message += "; " + detail;
  Throw(env, spec);
}

void ThrowCode(Napi::Env env, const char* fn, const std::string& code, const std::string& message,
               const std::string& syscall, const std::string& path, int err) {
  ErrorSpec spec;
  spec.code = code;
  spec.err = std::abs(err);
  spec.syscall = syscall.empty() ? std::string(fn) : syscall;
  spec.path = path;
  spec.message = std::string(fn) + ": " + message;
  Throw(env, spec);
}

void ThrowInvalidArgument(Napi::Env env, const char* fn, const std::string& message) {
  ThrowCode(env, fn, "ERR_NM_INVALID_ARGUMENT", message, fn);
}

}  // namespace nm
