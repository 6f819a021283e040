// Sockets created inside another network namespace: socketInNetns (for the proxy's
// per-pod listeners and its connections from inside a pod) and netnsCookie.
//
// Only socket() runs inside the namespace; a socket keeps the namespace it was created
// in, so options, bind and listen happen after the thread is back home.
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>

#include "args.h"
#include "errors.h"
#include "netns.h"
#include "netns_guard.h"
#include "register.h"
#include "sockaddr.h"
#include "unique_fd.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace nm {

namespace {

// A non-blocking, close-on-exec TCP socket of `family` (4 or 6) created in the namespace.
int TcpSocketInNetns(Napi::Env env, const char* fn, int netns_fd, int family) {
  ExpectNetnsFd(env, fn, netns_fd);
  int fd;
  int err = 0;
  {
    NetnsGuard guard(env, fn, netns_fd);
    fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) err = errno;
  }  // back in the thread's own namespace here, before anything can throw
  if (fd < 0) ThrowErrno(env, fn, err, "socket");
  return fd;
}

void SetIntOption(Napi::Env env, const char* fn, int fd, int level, int name, int value, const char* what) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    ThrowErrno(env, fn, errno, "setsockopt", std::string(), std::string(what) + " = " + std::to_string(value));
  }
}

Napi::Value SocketInNetns(const Napi::CallbackInfo& info) {
  Args args(info, "socketInNetns", 2);
  Napi::Env env = args.env();
  const char* fn = args.fn();
  int netns_fd = args.Fd(0, "netnsFd");
  Napi::Object options = args.Object(1, "options");

  std::optional<int64_t> family = args.OptInt(options, "family", 4, 6);
  if (!family || (*family != 4 && *family != 6)) args.Invalid("options.family must be 4 or 6");
  std::optional<std::string> bind_address = args.OptString(options, "bindAddress");
  std::optional<int64_t> bind_port = args.OptInt(options, "bindPort", 0, 65535);
  std::optional<int64_t> backlog = args.OptInt(options, "listenBacklog", 0, INT32_MAX);
  std::optional<int64_t> mark = args.OptInt(options, "mark", 0, UINT32_MAX);
  std::optional<bool> reuse_addr = args.OptBool(options, "reuseAddr");
  std::optional<bool> reuse_port = args.OptBool(options, "reusePort");
  std::optional<bool> transparent = args.OptBool(options, "transparent");
  std::optional<bool> v6_only = args.OptBool(options, "v6Only");

  if (bind_port && !bind_address) args.Invalid("options.bindPort needs options.bindAddress");
  SockAddr addr;
  if (bind_address && !ParseSockAddr(static_cast<int>(*family), *bind_address, static_cast<uint16_t>(bind_port.value_or(0)), &addr)) {
    args.Invalid("options.bindAddress '" + *bind_address + "' is not an IPv" + std::to_string(*family) + " address");
  }

  UniqueFd sock(TcpSocketInNetns(env, fn, netns_fd, static_cast<int>(*family)));
  int fd = sock.get();
  if (mark) {
    uint32_t value = static_cast<uint32_t>(*mark);
    if (setsockopt(fd, SOL_SOCKET, SO_MARK, &value, sizeof(value)) != 0) {
      ThrowErrno(env, fn, errno, "setsockopt", std::string(), "SO_MARK = " + std::to_string(value));
    }
  }
  if (reuse_addr.value_or(backlog.has_value())) SetIntOption(env, fn, fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  if (reuse_port.value_or(false)) SetIntOption(env, fn, fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
  if (transparent.value_or(false)) {
    if (*family == 6) {
      SetIntOption(env, fn, fd, SOL_IPV6, IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT");
    } else {
      SetIntOption(env, fn, fd, SOL_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT");
    }
  }
  if (*family == 6) SetIntOption(env, fn, fd, IPPROTO_IPV6, IPV6_V6ONLY, v6_only.value_or(true) ? 1 : 0, "IPV6_V6ONLY");
  if (bind_address) {
    if (bind(fd, reinterpret_cast<const sockaddr*>(&addr.storage), addr.length) != 0) {
      ThrowErrno(env, fn, errno, "bind", std::string(), *bind_address + " port " + std::to_string(bind_port.value_or(0)));
    }
  }
  if (backlog) {
    if (listen(fd, static_cast<int>(*backlog)) != 0) ThrowErrno(env, fn, errno, "listen");
  }
  return Napi::Number::New(env, sock.release());
}

Napi::Value NetnsCookie(const Napi::CallbackInfo& info) {
  Args args(info, "netnsCookie", 1);
  Napi::Env env = args.env();
  int netns_fd = args.Fd(0, "netnsFd");
  UniqueFd sock(TcpSocketInNetns(env, args.fn(), netns_fd, 4));
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(sock.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) {
    ThrowErrno(env, args.fn(), errno, "getsockopt", std::string(), "SO_NETNS_COOKIE needs Linux 5.14 or later");
  }
  return Napi::BigInt::New(env, cookie);
}

}  // namespace

void RegisterNetnsSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("socketInNetns", Napi::Function::New(env, SocketInNetns, "socketInNetns"));
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookie, "netnsCookie"));
}

}  // namespace nm
