// Socket addresses: parsing textual addresses for bind, and turning sockaddrs into the
// { family, address, port } objects of native-binding.ts.
#pragma once

#include <napi.h>
#include <sys/socket.h>

#include <string>

namespace nm {

struct SockAddr {
  sockaddr_storage storage;
  socklen_t length = 0;
};

// Parses `address` (an IP literal of `family`, 4 or 6) and `port`; false when the text
// is not such a literal.
bool ParseSockAddr(int family, const std::string& address, uint16_t port, SockAddr* out);

// { family: 4|6, address, port }. With unmap_v4, an IPv4-mapped IPv6 address is reported
// as family 4 with the dotted address. Throws EAFNOSUPPORT for non-IP families.
Napi::Object SockAddrToObject(Napi::Env env, const char* fn, const sockaddr* sa, bool unmap_v4);

// True when sa is AF_INET6 holding an IPv4-mapped address.
bool IsV4Mapped(const sockaddr* sa);

}  // namespace nm
