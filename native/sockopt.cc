// Socket options and addresses of existing sockets (fds owned by Node objects): marks,
// transparency, SO_REUSEPORT, the original destination of a redirected connection, the
// socket cookie, local/peer addresses, and close(2).
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "args.h"
#include "errors.h"
#include "register.h"
#include "sockaddr.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80  // linux/netfilter_ipv4.h
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80  // linux/netfilter_ipv6/ip6_tables.h
#endif
#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

namespace nm {

namespace {

SockAddr LocalSockAddr(Napi::Env env, const char* fn, int fd) {
  SockAddr addr;
  std::memset(&addr.storage, 0, sizeof(addr.storage));
  addr.length = sizeof(addr.storage);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr.storage), &addr.length) != 0) {
    ThrowErrno(env, fn, errno, "getsockname", std::string(), "fd " + std::to_string(fd));
  }
  return addr;
}

int SocketFamily(Napi::Env env, const char* fn, int fd) {
  SockAddr addr = LocalSockAddr(env, fn, fd);
  int family = addr.storage.ss_family;
  if (family != AF_INET && family != AF_INET6) {
    ThrowErrno(env, fn, EAFNOSUPPORT, "getsockname", std::string(), "fd " + std::to_string(fd) + " is not an IP socket");
  }
  return family;
}

Napi::Value SetMark(const Napi::CallbackInfo& info) {
  Args args(info, "setMark", 2);
  int fd = args.Fd(0, "fd");
  uint32_t mark = args.U32(1, "mark");
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) {
    ThrowErrno(args.env(), args.fn(), errno, "setsockopt", std::string(), "SO_MARK on fd " + std::to_string(fd));
  }
  return args.env().Undefined();
}

Napi::Value SetTransparent(const Napi::CallbackInfo& info) {
  Args args(info, "setTransparent", 2);
  int fd = args.Fd(0, "fd");
  int on = args.Bool(1, "on") ? 1 : 0;
  int family = SocketFamily(args.env(), args.fn(), fd);
  // Both options set the same flag of the socket; the IPv6 one is needed on AF_INET6.
  int rc = family == AF_INET6 ? setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &on, sizeof(on))
                              : setsockopt(fd, SOL_IP, IP_TRANSPARENT, &on, sizeof(on));
  if (rc != 0) {
    ThrowErrno(args.env(), args.fn(), errno, "setsockopt", std::string(),
               std::string(family == AF_INET6 ? "IPV6_TRANSPARENT" : "IP_TRANSPARENT") + " on fd " + std::to_string(fd));
  }
  return args.env().Undefined();
}

Napi::Value SetReusePort(const Napi::CallbackInfo& info) {
  Args args(info, "setReusePort", 2);
  int fd = args.Fd(0, "fd");
  int on = args.Bool(1, "on") ? 1 : 0;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
    ThrowErrno(args.env(), args.fn(), errno, "setsockopt", std::string(), "SO_REUSEPORT on fd " + std::to_string(fd));
  }
  return args.env().Undefined();
}

Napi::Value GetOriginalDst(const Napi::CallbackInfo& info) {
  Args args(info, "getOriginalDst", 1);
  Napi::Env env = args.env();
  const char* fn = args.fn();
  int fd = args.Fd(0, "fd");
  SockAddr local = LocalSockAddr(env, fn, fd);
  const sockaddr* local_sa = reinterpret_cast<const sockaddr*>(&local.storage);
  if (local_sa->sa_family != AF_INET && local_sa->sa_family != AF_INET6) {
    ThrowErrno(env, fn, EAFNOSUPPORT, "getsockname", std::string(), "fd " + std::to_string(fd) + " is not an IP socket");
  }
  // Once conntrack runs in a namespace every connection has an entry (an unredirected one
  // answers with its own local address); ENOENT means no entry and no BPF answer.
  const char* hint =
      "no original destination: conntrack has no entry for this connection (no NAT rule in its namespace) "
      "and no BPF getsockopt program answered";
  sockaddr_storage dst;
  std::memset(&dst, 0, sizeof(dst));
  // IPv4 connections, including IPv4 ones accepted on a dual-stack IPv6 socket (their
  // local address is IPv4-mapped), are tracked as IPv4: ask SOL_IP.
  if (local_sa->sa_family == AF_INET || IsV4Mapped(local_sa)) {
    socklen_t len = sizeof(sockaddr_in);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) != 0) {
      int err = errno;
      ThrowErrno(env, fn, err, "getsockopt", std::string(), err == ENOENT ? std::string("SO_ORIGINAL_DST: ") + hint : "SO_ORIGINAL_DST");
    }
  } else {
    socklen_t len = sizeof(sockaddr_in6);
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &len) != 0) {
      int err = errno;
      ThrowErrno(env, fn, err, "getsockopt", std::string(),
                 err == ENOENT ? std::string("IP6T_SO_ORIGINAL_DST: ") + hint : "IP6T_SO_ORIGINAL_DST");
    }
  }
  return SockAddrToObject(env, fn, reinterpret_cast<const sockaddr*>(&dst), true);
}

Napi::Value SocketCookie(const Napi::CallbackInfo& info) {
  Args args(info, "socketCookie", 1);
  int fd = args.Fd(0, "fd");
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) {
    ThrowErrno(args.env(), args.fn(), errno, "getsockopt", std::string(), "SO_COOKIE on fd " + std::to_string(fd));
  }
  return Napi::BigInt::New(args.env(), cookie);
}

Napi::Value LocalAddress(const Napi::CallbackInfo& info) {
  Args args(info, "localAddress", 1);
  int fd = args.Fd(0, "fd");
  SockAddr addr = LocalSockAddr(args.env(), args.fn(), fd);
  return SockAddrToObject(args.env(), args.fn(), reinterpret_cast<const sockaddr*>(&addr.storage), false);
}

Napi::Value PeerAddress(const Napi::CallbackInfo& info) {
  Args args(info, "peerAddress", 1);
  int fd = args.Fd(0, "fd");
  sockaddr_storage addr;
  std::memset(&addr, 0, sizeof(addr));
  socklen_t len = sizeof(addr);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ThrowErrno(args.env(), args.fn(), errno, "getpeername", std::string(), "fd " + std::to_string(fd));
  }
  return SockAddrToObject(args.env(), args.fn(), reinterpret_cast<const sockaddr*>(&addr), false);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  Args args(info, "close", 1);
  int fd = args.Fd(0, "fd");
  // Linux releases the fd even when close() reports EINTR: never retry.
  if (close(fd) != 0 && errno != EINTR) {
    ThrowErrno(args.env(), args.fn(), errno, "close", std::string(), "fd " + std::to_string(fd));
  }
  return args.env().Undefined();
}

}  // namespace

void RegisterSockopt(Napi::Env env, Napi::Object exports) {
  exports.Set("setMark", Napi::Function::New(env, SetMark, "setMark"));
  exports.Set("setTransparent", Napi::Function::New(env, SetTransparent, "setTransparent"));
  exports.Set("setReusePort", Napi::Function::New(env, SetReusePort, "setReusePort"));
  exports.Set("getOriginalDst", Napi::Function::New(env, GetOriginalDst, "getOriginalDst"));
  exports.Set("socketCookie", Napi::Function::New(env, SocketCookie, "socketCookie"));
  exports.Set("localAddress", Napi::Function::New(env, LocalAddress, "localAddress"));
  exports.Set("peerAddress", Napi::Function::New(env, PeerAddress, "peerAddress"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
}

}  // namespace nm
