// Pinning BPF objects (programs, maps, links) in bpffs and getting them back.
#include <bpf/bpf.h>

#include <string>

#include "args.h"
#include "errors.h"
#include "register.h"

namespace nm {

namespace {

Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  Args args(info, "objPin", 2);
  int fd = args.Fd(0, "fd");
  std::string path = args.String(1, "path");
  int err = bpf_obj_pin(fd, path.c_str());
  if (err < 0) ThrowErrno(args.env(), args.fn(), err, "bpf_obj_pin", path);
  return args.env().Undefined();
}

Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  Args args(info, "objGet", 1);
  std::string path = args.String(0, "path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(args.env(), args.fn(), fd, "bpf_obj_get", path);
  return Napi::Number::New(args.env(), fd);
}

}  // namespace

void RegisterBpfPin(Napi::Env env, Napi::Object exports) {
  exports.Set("objPin", Napi::Function::New(env, ObjPin, "objPin"));
  exports.Set("objGet", Napi::Function::New(env, ObjGet, "objGet"));
}

}  // namespace nm
