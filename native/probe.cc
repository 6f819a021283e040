// Feature probes: filesystem types (bpffs, cgroup2 mounts) and whether the kernel
// supports a BPF program or map type, by libbpf's names for them.
#include <bpf/libbpf.h>
#include <errno.h>
#include <sys/vfs.h>

#include <string>

#include "args.h"
#include "errors.h"
#include "register.h"

namespace nm {

namespace {

// libbpf's enum-to-name functions stop returning names past the last type they know.
constexpr int kMaxEnumProbe = 256;

std::string KnownNames(const char* (*to_str)(int)) {
  std::string out;
  for (int i = 1; i < kMaxEnumProbe; i++) {
    const char* name = to_str(i);
    if (name == nullptr) continue;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

const char* ProgTypeStr(int t) { return libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(t)); }
const char* MapTypeStr(int t) { return libbpf_bpf_map_type_str(static_cast<bpf_map_type>(t)); }

int FindType(const std::string& name, const char* (*to_str)(int)) {
  for (int i = 1; i < kMaxEnumProbe; i++) {
    const char* candidate = to_str(i);
    if (candidate != nullptr && name == candidate) return i;
  }
  return -1;
}

Napi::Value StatfsType(const Napi::CallbackInfo& info) {
  Args args(info, "statfsType", 1);
  std::string path = args.String(0, "path");
  struct statfs sfs;
  if (statfs(path.c_str(), &sfs) != 0) ThrowErrno(args.env(), args.fn(), errno, "statfs", path);
  return Napi::Number::New(args.env(), static_cast<double>(static_cast<unsigned long>(sfs.f_type)));
}

Napi::Value ProbeProgType(const Napi::CallbackInfo& info) {
  Args args(info, "probeProgType", 1);
  std::string name = args.String(0, "progType");
  int type = FindType(name, ProgTypeStr);
  if (type < 0) args.Invalid("unknown BPF program type '" + name + "' (known: " + KnownNames(ProgTypeStr) + ")");
  return Napi::Number::New(args.env(), libbpf_probe_bpf_prog_type(static_cast<bpf_prog_type>(type), nullptr));
}

Napi::Value ProbeMapType(const Napi::CallbackInfo& info) {
  Args args(info, "probeMapType", 1);
  std::string name = args.String(0, "mapType");
  int type = FindType(name, MapTypeStr);
  if (type < 0) args.Invalid("unknown BPF map type '" + name + "' (known: " + KnownNames(MapTypeStr) + ")");
  return Napi::Number::New(args.env(), libbpf_probe_bpf_map_type(static_cast<bpf_map_type>(type), nullptr));
}

}  // namespace

void RegisterProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("statfsType", Napi::Function::New(env, StatfsType, "statfsType"));
  exports.Set("probeProgType", Napi::Function::New(env, ProbeProgType, "probeProgType"));
  exports.Set("probeMapType", Napi::Function::New(env, ProbeMapType, "probeMapType"));
}

}  // namespace nm
