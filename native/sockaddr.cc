#include "sockaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include <cstring>

#include "errors.h"

namespace nm {

bool ParseSockAddr(int family, const std::string& address, uint16_t port, SockAddr* out) {
  std::memset(&out->storage, 0, sizeof(out->storage));
  if (family == 4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out->storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    if (inet_pton(AF_INET, address.c_str(), &sin->sin_addr) != 1) return false;
    out->length = sizeof(*sin);
    return true;
  }
  if (family == 6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) != 1) return false;
    out->length = sizeof(*sin6);
    return true;
  }
  return false;
}

bool IsV4Mapped(const sockaddr* sa) {
  if (sa->sa_family != AF_INET6) return false;
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
  return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
}

Napi::Object SockAddrToObject(Napi::Env env, const char* fn, const sockaddr* sa, bool unmap_v4) {
  char text[INET6_ADDRSTRLEN] = {0};
  int family = 0;
  uint16_t port = 0;
  if (sa->sa_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
    family = 4;
    port = ntohs(sin->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
    port = ntohs(sin6->sin6_port);
    if (unmap_v4 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      in_addr v4;
      std::memcpy(&v4, &sin6->sin6_addr.s6_addr[12], 4);
      inet_ntop(AF_INET, &v4, text, sizeof(text));
      family = 4;
    } else {
      inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
      family = 6;
    }
  } else {
    ThrowErrno(env, fn, EAFNOSUPPORT, "getsockname", std::string(),
               "address family " + std::to_string(sa->sa_family) + " is not IPv4 or IPv6");
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("family", Napi::Number::New(env, family));
  out.Set("address", Napi::String::New(env, text));
  out.Set("port", Napi::Number::New(env, port));
  return out;
}

}  // namespace nm
