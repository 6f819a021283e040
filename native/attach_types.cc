#include "attach_types.h"

namespace nm {

namespace {

struct AttachTypeEntry {
  const char* name;
  bpf_attach_type type;
};

constexpr AttachTypeEntry kAttachTypes[] = {
    {"cgroup_inet4_connect", BPF_CGROUP_INET4_CONNECT},
    {"cgroup_inet6_connect", BPF_CGROUP_INET6_CONNECT},
    {"cgroup_getsockopt", BPF_CGROUP_GETSOCKOPT},
    {"cgroup_sock_ops", BPF_CGROUP_SOCK_OPS},
    {"sk_lookup", BPF_SK_LOOKUP},
    {"sk_msg_verdict", BPF_SK_MSG_VERDICT},
};

}  // namespace

std::optional<bpf_attach_type> ParseAttachType(const std::string& name) {
  for (const auto& e : kAttachTypes) {
    if (name == e.name) return e.type;
  }
  return std::nullopt;
}

std::string AttachTypeName(uint32_t type) {
  for (const auto& e : kAttachTypes) {
    if (static_cast<uint32_t>(e.type) == type) return e.name;
  }
  return "unknown(" + std::to_string(type) + ")";
}

std::string AttachTypeNames() {
  std::string out;
  for (const auto& e : kAttachTypes) {
    if (!out.empty()) out += ", ";
    out += e.name;
  }
  return out;
}

}  // namespace nm
