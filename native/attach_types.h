// The attach types the addon accepts, by the names libbpf uses for them
// (libbpf_bpf_attach_type_str), which are the AttachType names of native-binding.ts.
#pragma once

#include <linux/bpf.h>

#include <optional>
#include <string>

namespace nm {

std::optional<bpf_attach_type> ParseAttachType(const std::string& name);
// The AttachType name, or 'unknown(N)'.
std::string AttachTypeName(uint32_t type);
// "cgroup_inet4_connect, cgroup_inet6_connect, ..." for error messages.
std::string AttachTypeNames();

}  // namespace nm
