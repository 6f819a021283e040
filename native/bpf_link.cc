// Attaching programs: BPF links (cgroup hooks, sk_lookup on a netns) and the older
// bpf_prog_attach (sk_msg verdicts on a sockhash), plus link/program introspection.
#include <bpf/bpf.h>
#include <errno.h>

#include <cstring>
#include <string>

#include "args.h"
#include "attach_types.h"
#include "bpf_fd.h"
#include "errors.h"
#include "register.h"

namespace nm {

namespace {

// Link types from newer UAPI headers than the build machine may have.
constexpr uint32_t kLinkTypeCgroup = 3;   // BPF_LINK_TYPE_CGROUP
constexpr uint32_t kLinkTypeNetns = 5;    // BPF_LINK_TYPE_NETNS
constexpr uint32_t kLinkTypeSockmap = 14; // BPF_LINK_TYPE_SOCKMAP (6.10+): { map_id, attach_type }

bpf_attach_type AttachTypeArg(const Args& args, size_t i) {
  std::string name = args.String(i, "attachType");
  auto type = ParseAttachType(name);
  if (!type) args.Invalid("unknown attach type '" + name + "' (known: " + AttachTypeNames() + ")");
  return *type;
}

Napi::Value LinkCreate(const Napi::CallbackInfo& info) {
  Args args(info, "linkCreate", 3);
  int prog_fd = args.Fd(0, "progFd");
  int target_fd = args.Fd(1, "targetFd");
  bpf_attach_type type = AttachTypeArg(args, 2);
  int fd = bpf_link_create(prog_fd, target_fd, type, nullptr);
  if (fd < 0) {
    ThrowErrno(args.env(), args.fn(), fd, "bpf_link_create", std::string(),
               "attach type " + AttachTypeName(type) + ", prog fd " + std::to_string(prog_fd) + ", target fd " +
                   std::to_string(target_fd));
  }
  return Napi::Number::New(args.env(), fd);
}

Napi::Value LinkDetach(const Napi::CallbackInfo& info) {
  Args args(info, "linkDetach", 1);
  int fd = args.Fd(0, "linkFd");
  ExpectBpfFd(args.env(), args.fn(), fd, BpfFdKind::kLink);
  int err = bpf_link_detach(fd);
  if (err < 0) ThrowErrno(args.env(), args.fn(), err, "bpf_link_detach");
  return args.env().Undefined();
}

Napi::Value LinkInfo(const Napi::CallbackInfo& info) {
  Args args(info, "linkInfo", 1);
  Napi::Env env = args.env();
  int fd = args.Fd(0, "linkFd");
  ExpectBpfFd(env, args.fn(), fd, BpfFdKind::kLink);
  bpf_link_info li;
  std::memset(&li, 0, sizeof(li));
  uint32_t len = sizeof(li);
  int err = bpf_obj_get_info_by_fd(fd, &li, &len);
  if (err < 0) ThrowErrno(env, args.fn(), err, "bpf_obj_get_info_by_fd");

  std::string attach_type = "unknown(-1)";
  double target_id = 0;
  if (li.type == kLinkTypeCgroup) {
    attach_type = AttachTypeName(li.cgroup.attach_type);
    target_id = static_cast<double>(li.cgroup.cgroup_id);
  } else if (li.type == kLinkTypeNetns) {
    attach_type = AttachTypeName(li.netns.attach_type);
    target_id = li.netns.netns_ino;
  } else if (li.type == kLinkTypeSockmap) {
    uint32_t words[2];
    std::memcpy(words, &li.netns, sizeof(words));  // same offset as the sockmap member
    attach_type = AttachTypeName(words[1]);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", Napi::Number::New(env, li.id));
  out.Set("progId", Napi::Number::New(env, li.prog_id));
  out.Set("attachType", Napi::String::New(env, attach_type));
  out.Set("targetId", Napi::Number::New(env, target_id));
  return out;
}

Napi::Value ProgAttach(const Napi::CallbackInfo& info) {
  Args args(info, "progAttach", 3);
  int prog_fd = args.Fd(0, "progFd");
  int target_fd = args.Fd(1, "targetFd");
  bpf_attach_type type = AttachTypeArg(args, 2);
  int err = bpf_prog_attach(prog_fd, target_fd, type, 0);
  if (err < 0) {
    ThrowErrno(args.env(), args.fn(), err, "bpf_prog_attach", std::string(), "attach type " + AttachTypeName(type));
  }
  return args.env().Undefined();
}

Napi::Value ProgDetach(const Napi::CallbackInfo& info) {
  Args args(info, "progDetach", 3);
  int prog_fd = args.Fd(0, "progFd");
  int target_fd = args.Fd(1, "targetFd");
  bpf_attach_type type = AttachTypeArg(args, 2);
  int err = bpf_prog_detach2(prog_fd, target_fd, type);
  if (err < 0) {
    ThrowErrno(args.env(), args.fn(), err, "bpf_prog_detach2", std::string(), "attach type " + AttachTypeName(type));
  }
  return args.env().Undefined();
}

Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Args args(info, "progInfo", 1);
  Napi::Env env = args.env();
  int fd = args.Fd(0, "progFd");
  ExpectBpfFd(env, args.fn(), fd, BpfFdKind::kProg);
  bpf_prog_info pi;
  std::memset(&pi, 0, sizeof(pi));
  uint32_t len = sizeof(pi);
  int err = bpf_obj_get_info_by_fd(fd, &pi, &len);
  if (err < 0) ThrowErrno(env, args.fn(), err, "bpf_obj_get_info_by_fd");
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", Napi::Number::New(env, pi.id));
  out.Set("name", Napi::String::New(env, std::string(pi.name, strnlen(pi.name, sizeof(pi.name)))));
  out.Set("type", Napi::Number::New(env, pi.type));
  return out;
}

}  // namespace

void RegisterBpfLink(Napi::Env env, Napi::Object exports) {
  exports.Set("linkCreate", Napi::Function::New(env, LinkCreate, "linkCreate"));
  exports.Set("linkDetach", Napi::Function::New(env, LinkDetach, "linkDetach"));
  exports.Set("linkInfo", Napi::Function::New(env, LinkInfo, "linkInfo"));
  exports.Set("progAttach", Napi::Function::New(env, ProgAttach, "progAttach"));
  exports.Set("progDetach", Napi::Function::New(env, ProgDetach, "progDetach"));
  exports.Set("progInfo", Napi::Function::New(env, ProgInfo, "progInfo"));
}

}  // namespace nm
