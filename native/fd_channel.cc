// A unix stream socket that carries framed messages with file descriptors (SCM_RIGHTS):
// the agent hand-over (src/runtime/handover/) gives its listening and connected sockets
// to its successor this way.
//
// A message is a 4-byte big-endian length and that many bytes (JSON, by convention);
// its descriptors ride as ancillary data of its first byte. Linux never delivers the
// descriptors of one write together with the bytes of the next (a read stops after a
// segment that carried descriptors), and the receiver reads exactly one message's bytes,
// so every message gets exactly its own descriptors.
//
// Sending and receiving run on libuv's thread pool (an AsyncWorker around poll() and
// sendmsg/recvmsg) with a deadline, so the JS thread never blocks on a slow or frozen
// peer. The descriptor itself stays non-blocking.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "args.h"
#include "errors.h"
#include "register.h"
#include "unique_fd.h"

namespace nm {

namespace {

// SCM_MAX_FD in the kernel: more descriptors in one message fail with EINVAL.
constexpr size_t kMaxFdsPerMessage = 253;
// A hand-over message lists sockets and their metadata: far below this.
constexpr uint32_t kMaxMessageBytes = 16 * 1024 * 1024;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Waits until fd is ready for `events` or the deadline passed. 0 ready, else an errno
// (ETIMEDOUT at the deadline, EPIPE when the peer hung up and we wait to read).
int WaitFor(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    int64_t left = deadline_ms - NowMs();
    if (left <= 0) return ETIMEDOUT;
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left > 1000 ? 1000 : left));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) continue;
    if (p.revents & (events | POLLHUP | POLLERR)) return 0;  // the call that follows tells which
  }
}

struct Outcome {
  int err = 0;
  std::string syscall;
  std::string code;  // ERR_NM_* when not an errno
  std::string detail;
};

class SendWorker : public Napi::AsyncWorker {
 public:
  SendWorker(Napi::Env env, int fd, std::vector<uint8_t> bytes, std::vector<int> fds, int64_t timeout_ms)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), fd_(fd), bytes_(std::move(bytes)),
        fds_(std::move(fds)), timeout_ms_(timeout_ms) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    int64_t deadline = NowMs() + timeout_ms_;
    size_t sent = 0;
    while (sent < bytes_.size()) {
      iovec iov{bytes_.data() + sent, bytes_.size() - sent};
      msghdr msg;
      std::memset(&msg, 0, sizeof(msg));
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      std::vector<char> control;
      if (sent == 0 && !fds_.empty()) {
        control.assign(CMSG_SPACE(sizeof(int) * fds_.size()), 0);
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds_.size());
        std::memcpy(CMSG_DATA(c), fds_.data(), sizeof(int) * fds_.size());
      }
      ssize_t n = sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          int w = WaitFor(fd_, POLLOUT, deadline);
          if (w != 0) {
            out_ = {w, w == ETIMEDOUT ? "poll" : "poll", "", "sending a hand-over message"};
            return;
          }
          continue;
        }
        out_ = {errno, "sendmsg", "", "sending a hand-over message"};
        return;
      }
      sent += static_cast<size_t>(n);
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (out_.err == 0) {
      deferred_.Resolve(env.Undefined());
      return;
    }
    try {
      ThrowErrno(env, "fdChannelSend", out_.err, out_.syscall, std::string(), out_.detail);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  int fd_;
  std::vector<uint8_t> bytes_;
  std::vector<int> fds_;
  int64_t timeout_ms_;
  Outcome out_;
};

class RecvWorker : public Napi::AsyncWorker {
 public:
  RecvWorker(Napi::Env env, int fd, int64_t timeout_ms)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), fd_(fd), timeout_ms_(timeout_ms) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    int64_t deadline = NowMs() + timeout_ms_;
    uint8_t header[4];
    if (!ReadExactly(header, sizeof(header), deadline, true)) return;
    uint32_t length = (uint32_t(header[0]) << 24) | (uint32_t(header[1]) << 16) | (uint32_t(header[2]) << 8) | uint32_t(header[3]);
    if (length > kMaxMessageBytes) {
      out_ = {0, "recvmsg", "ERR_NM_HANDOVER_PROTOCOL", "a hand-over message of " + std::to_string(length) + " bytes is over the limit"};
      return;
    }
    body_.resize(length);
    if (length > 0) ReadExactly(body_.data(), length, deadline, false);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (out_.err == 0 && out_.code.empty()) {
      Napi::Object result = Napi::Object::New(env);
      result.Set("eof", Napi::Boolean::New(env, eof_));
      result.Set("data", Napi::Buffer<uint8_t>::Copy(env, body_.data(), body_.size()));
      Napi::Array fds = Napi::Array::New(env, fds_.size());
      for (size_t i = 0; i < fds_.size(); i++) fds.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds_[i]));
      fds_.clear();  // owned by JS now
      result.Set("fds", fds);
      deferred_.Resolve(result);
      return;
    }
    try {
      if (!out_.code.empty()) ThrowCode(env, "fdChannelRecv", out_.code, "fdChannelRecv: " + out_.detail, out_.syscall, std::string(), out_.err);
      ThrowErrno(env, "fdChannelRecv", out_.err, out_.syscall, std::string(), out_.detail);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  ~RecvWorker() override {
    // Descriptors of a message that failed half-way: nobody will own them.
    for (int fd : fds_) ::close(fd);
  }

 private:
  // Reads exactly `want` bytes, collecting descriptors. At a clean end of stream before
  // the first byte of a message (`at_start`), sets eof_ and returns false without error.
  bool ReadExactly(uint8_t* into, size_t want, int64_t deadline, bool at_start) {
    size_t got = 0;
    while (got < want) {
      iovec iov{into + got, want - got};
      std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage), 0);
      msghdr msg;
      std::memset(&msg, 0, sizeof(msg));
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          int w = WaitFor(fd_, POLLIN, deadline);
          if (w != 0) {
            out_ = {w, "poll", "", "waiting for a hand-over message"};
            return false;
          }
          continue;
        }
        out_ = {errno, "recvmsg", "", "receiving a hand-over message"};
        return false;
      }
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const int* p = reinterpret_cast<const int*>(CMSG_DATA(c));
        for (size_t i = 0; i < count; i++) {
          int fd;
          std::memcpy(&fd, p + i, sizeof(int));
          fds_.push_back(fd);
        }
      }
      if (msg.msg_flags & MSG_CTRUNC) {
        out_ = {0, "recvmsg", "ERR_NM_HANDOVER_PROTOCOL", "descriptors were cut off (more than " + std::to_string(kMaxFdsPerMessage) + " in one message)"};
        return false;
      }
      if (n == 0) {
        if (at_start && got == 0) {
          eof_ = true;
          return false;
        }
        out_ = {0, "recvmsg", "ERR_NM_HANDOVER_PEER_CLOSED", "the peer closed the hand-over socket in the middle of a message"};
        return false;
      }
      got += static_cast<size_t>(n);
    }
    return true;
  }

  Napi::Promise::Deferred deferred_;
  int fd_;
  int64_t timeout_ms_;
  std::vector<uint8_t> body_;
  std::vector<int> fds_;
  bool eof_ = false;
  Outcome out_;
};

// fdChannelSend(fd, message: Buffer, fds: number[], timeoutMs): Promise<void>.
// The buffer is the message body; the length prefix is added here.
Napi::Value FdChannelSend(const Napi::CallbackInfo& info) {
  Args args(info, "fdChannelSend", 4);
  Napi::Env env = args.env();
  int fd = args.Fd(0, "fd");
  Napi::Buffer<uint8_t> body = args.Buffer(1, "message");
  if (!info[2].IsArray()) args.Invalid("fds must be an array of file descriptors");
  Napi::Array list = info[2].As<Napi::Array>();
  if (list.Length() > kMaxFdsPerMessage) args.Invalid("at most " + std::to_string(kMaxFdsPerMessage) + " descriptors per message");
  int64_t timeout_ms = args.Int(3, "timeoutMs", 1, 24LL * 3600 * 1000);
  if (body.Length() > kMaxMessageBytes) args.Invalid("message over " + std::to_string(kMaxMessageBytes) + " bytes");
  std::vector<int> fds;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsNumber()) args.Invalid("fds[" + std::to_string(i) + "] must be a file descriptor");
    int64_t d = v.As<Napi::Number>().Int64Value();
    if (d < 0 || d > INT32_MAX) args.Invalid("fds[" + std::to_string(i) + "] must be a file descriptor");
    fds.push_back(static_cast<int>(d));
  }
  std::vector<uint8_t> bytes(4 + body.Length());
  uint32_t n = static_cast<uint32_t>(body.Length());
  bytes[0] = static_cast<uint8_t>(n >> 24);
  bytes[1] = static_cast<uint8_t>(n >> 16);
  bytes[2] = static_cast<uint8_t>(n >> 8);
  bytes[3] = static_cast<uint8_t>(n);
  if (body.Length() > 0) std::memcpy(bytes.data() + 4, body.Data(), body.Length());
  auto* worker = new SendWorker(env, fd, std::move(bytes), std::move(fds), timeout_ms);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// fdChannelRecv(fd, timeoutMs): Promise<{ eof, data, fds }>: one message, or eof at a
// clean end of stream between messages.
Napi::Value FdChannelRecv(const Napi::CallbackInfo& info) {
  Args args(info, "fdChannelRecv", 2);
  int fd = args.Fd(0, "fd");
  int64_t timeout_ms = args.Int(1, "timeoutMs", 1, 24LL * 3600 * 1000);
  auto* worker = new RecvWorker(args.env(), fd, timeout_ms);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// unixConnect(path): a non-blocking, close-on-exec unix stream socket connected to path.
// A unix connect completes at once or fails (ENOENT, ECONNREFUSED: nobody listens).
Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  Args args(info, "unixConnect", 1);
  Napi::Env env = args.env();
  std::string path = args.String(0, "path");
  sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) args.Invalid("path is longer than a unix socket path can be (" + std::to_string(sizeof(addr.sun_path) - 1) + " bytes)");
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) ThrowErrno(env, args.fn(), errno, "socket");
  // Blocking for connect only: a unix connect never waits on a network, only on a full
  // backlog, which a listening agent drains at once.
  if (connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    ThrowErrno(env, args.fn(), errno, "connect", path);
  }
  int flags = fcntl(sock.get(), F_GETFL);
  if (flags < 0 || fcntl(sock.get(), F_SETFL, flags | O_NONBLOCK) != 0) ThrowErrno(env, args.fn(), errno, "fcntl");
  return Napi::Number::New(env, sock.release());
}

// dupFd(fd): a close-on-exec duplicate, so a descriptor outlives the Node object that owned it.
Napi::Value DupFd(const Napi::CallbackInfo& info) {
  Args args(info, "dupFd", 1);
  int fd = args.Fd(0, "fd");
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) ThrowErrno(args.env(), args.fn(), errno, "fcntl", std::string(), "F_DUPFD_CLOEXEC of fd " + std::to_string(fd));
  return Napi::Number::New(args.env(), copy);
}

// setNonBlocking(fd, on): received descriptors keep the sender's file status flags; Node
// expects non-blocking sockets.
Napi::Value SetNonBlocking(const Napi::CallbackInfo& info) {
  Args args(info, "setNonBlocking", 2);
  int fd = args.Fd(0, "fd");
  bool on = args.Bool(1, "on");
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) ThrowErrno(args.env(), args.fn(), errno, "fcntl");
  int want = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (want != flags && fcntl(fd, F_SETFL, want) != 0) ThrowErrno(args.env(), args.fn(), errno, "fcntl");
  return args.env().Undefined();
}

}  // namespace

void RegisterFdChannel(Napi::Env env, Napi::Object exports) {
  exports.Set("fdChannelSend", Napi::Function::New(env, FdChannelSend, "fdChannelSend"));
  exports.Set("fdChannelRecv", Napi::Function::New(env, FdChannelRecv, "fdChannelRecv"));
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect, "unixConnect"));
  exports.Set("dupFd", Napi::Function::New(env, DupFd, "dupFd"));
  exports.Set("setNonBlocking", Napi::Function::New(env, SetNonBlocking, "setNonBlocking"));
}

}  // namespace nm
