// Small fd helpers the real Platform needs, as raw fds: eventfd, epoll, poll,
// loopback TCP sockets, files (open, pread, pwrite, fdatasync, ftruncate) and
// close. Sockets and eventfds are non-blocking: reads and writes that would block
// return null. The waits (epollWait, pollIn) block on purpose, up to their
// timeout, the way QEMU's main loop blocks in ppoll; file I/O and fdatasync block
// because regular files cannot be made non-blocking (that is the flush stall).
// Leaves out: IPv6, DNS, UNIX sockets, O_DIRECT, io_uring.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "common.h"
#include "state.h"

namespace latsim {

// Returns `n` as a JS number, or null when the call would block.
static Napi::Value CountOrNull(Napi::Env env, ssize_t n, int err, const char* what) {
  if (n >= 0) return Napi::Number::New(env, static_cast<double>(n));
  if (err == EAGAIN || err == EWOULDBLOCK) return env.Null();
  ThrowErrno(env, err, what);
}

// ---- eventfd ----------------------------------------------------------------

static Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  unsigned int init = ArgPresent(info, 0) ? static_cast<unsigned int>(ArgInt(info, 0, "initval", 0, UINT32_MAX)) : 0;
  int flags = EFD_NONBLOCK | EFD_CLOEXEC;
  if (ArgBool(info, 1, "semaphore", false)) flags |= EFD_SEMAPHORE;
  int fd = eventfd(init, flags);
  if (fd < 0) ThrowErrno(env, errno, "eventfd");
  return Napi::Number::New(env, fd);
}

static Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint64_t v = 0;
  ssize_t n = read(fd, &v, sizeof v);
  if (n < 0) {
    int err = errno;
    if (err == EAGAIN) return env.Null();
    ThrowErrno(env, err, "eventfd read");
  }
  return Napi::Number::New(env, static_cast<double>(v));
}

static Napi::Value EventfdWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint64_t v = ArgPresent(info, 1) ? ArgU64(info, 1, "value") : 1;
  ssize_t n = write(fd, &v, sizeof v);
  if (n < 0) ThrowErrno(env, errno, "eventfd write");
  return env.Undefined();
}

// ---- epoll / poll -------------------------------------------------------------

static Napi::Value EpollCreate(const Napi::CallbackInfo& info) {
  int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), errno, "epoll_create1");
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value EpollCtl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ep = ArgFd(info, 0, "epfd");
  std::string op = ArgString(info, 1, "op");
  int fd = ArgFd(info, 2, "fd");
  uint32_t events = ArgPresent(info, 3) ? static_cast<uint32_t>(ArgInt(info, 3, "events", 0, UINT32_MAX)) : 0;
  int o;
  if (op == "add")
    o = EPOLL_CTL_ADD;
  else if (op == "mod")
    o = EPOLL_CTL_MOD;
  else if (op == "del")
    o = EPOLL_CTL_DEL;
  else
    ThrowCode(env, "EINVAL", "epoll op must be 'add', 'mod' or 'del'");
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(ep, o, fd, &ev) < 0) ThrowErrno(env, errno, "epoll_ctl " + op);
  return env.Undefined();
}

// epollWait(epfd, out: Int32Array, timeoutMs) -> n. Fills out[2i] = fd,
// out[2i+1] = events. timeoutMs -1 waits forever. A signal ends the wait early
// with n = 0, like a timeout.
static Napi::Value EpollWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ep = ArgFd(info, 0, "epfd");
  if (info.Length() < 2 || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    ThrowCode(env, "EINVAL", "argument 1 (out) must be an Int32Array");
  Napi::Int32Array out = info[1].As<Napi::Int32Array>();
  int timeout = static_cast<int>(ArgInt(info, 2, "timeoutMs", -1, INT32_MAX));
  int max = static_cast<int>(out.ElementLength() / 2);
  if (max < 1) ThrowCode(env, "EINVAL", "out must hold at least one (fd, events) pair");
  if (max > 256) max = 256;
  struct epoll_event evs[256];
  int n = epoll_wait(ep, evs, max, timeout);
  if (n < 0) {
    if (errno == EINTR) return Napi::Number::New(env, 0);
    ThrowErrno(env, errno, "epoll_wait");
  }
  for (int i = 0; i < n; i++) {
    out[2 * i] = evs[i].data.fd;
    out[2 * i + 1] = static_cast<int32_t>(evs[i].events);
  }
  return Napi::Number::New(env, n);
}

// pollIn(fd, timeoutMs) -> boolean: waits until fd is readable.
static Napi::Value PollIn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct pollfd p;
  p.fd = ArgFd(info, 0, "fd");
  p.events = POLLIN;
  p.revents = 0;
  int timeout = static_cast<int>(ArgInt(info, 1, "timeoutMs", -1, INT32_MAX));
  int n = poll(&p, 1, timeout);
  if (n < 0) {
    if (errno == EINTR) return Napi::Boolean::New(env, false);
    ThrowErrno(env, errno, "poll");
  }
  return Napi::Boolean::New(env, n > 0);
}

// ---- TCP on IPv4 -------------------------------------------------------------

static struct sockaddr_in Addr4(Napi::Env env, const std::string& host, int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1)
    ThrowCode(env, "EINVAL", "host must be a dotted IPv4 address such as 127.0.0.1, not '" + host + "'");
  return a;
}

static Napi::Value TcpListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = ArgString(info, 0, "host");
  int port = static_cast<int>(ArgInt(info, 1, "port", 0, 65535));
  int backlog = ArgPresent(info, 2) ? static_cast<int>(ArgInt(info, 2, "backlog", 1, 4096)) : 16;
  struct sockaddr_in a = Addr4(env, host, port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof a) < 0 || listen(fd, backlog) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "listen on " + host + ":" + std::to_string(port));
  }
  return Napi::Number::New(env, fd);
}

static Napi::Value SocketLocalPort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&a), &len) < 0) ThrowErrno(env, errno, "getsockname");
  return Napi::Number::New(env, ntohs(a.sin_port));
}

static void NoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// tcpAccept(listenFd) -> fd | null (no pending connection).
static Napi::Value TcpAccept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = accept4(ArgFd(info, 0, "listenFd"), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return env.Null();
    ThrowErrno(env, err, "accept");
  }
  NoDelay(fd);
  return Napi::Number::New(env, fd);
}

// tcpConnect(host, port) -> fd. The connect may still be in progress: wait for
// EPOLLOUT, then socketError(fd) says whether it succeeded.
static Napi::Value TcpConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = ArgString(info, 0, "host");
  int port = static_cast<int>(ArgInt(info, 1, "port", 1, 65535));
  struct sockaddr_in a = Addr4(env, host, port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket");
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof a) < 0 && errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "connect to " + host + ":" + std::to_string(port));
  }
  NoDelay(fd);
  return Napi::Number::New(env, fd);
}

// socketError(fd) -> errno name of a failed connect, or null.
static Napi::Value SocketError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) ThrowErrno(env, errno, "getsockopt SO_ERROR");
  if (err == 0) return env.Null();
  return Napi::String::New(env, ErrnoName(err));
}

// ---- read / write ---------------------------------------------------------------

// read(fd, buf) -> bytes read (0 at end of stream) | null (would block).
static Napi::Value Read(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  Bytes b = ArgBytes(info, 1, "buf");
  ssize_t n = read(fd, b.data, b.length);
  return CountOrNull(info.Env(), n, errno, "read");
}

// write(fd, buf) -> bytes written | null (would block).
static Napi::Value Write(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  Bytes b = ArgBytes(info, 1, "buf");
  ssize_t n = send(fd, b.data, b.length, MSG_NOSIGNAL);
  if (n < 0 && errno == ENOTSOCK) n = write(fd, b.data, b.length);
  return CountOrNull(info.Env(), n, errno, "write");
}

// ---- files -----------------------------------------------------------------------

// fileOpen(path, mode): 'r' read-only, 'r+' read-write, 'w+' read-write created
// and truncated, 'a+' read-write created if missing (kept).
static Napi::Value FileOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "path");
  std::string mode = ArgPresent(info, 1) ? ArgString(info, 1, "mode") : "r";
  int flags = O_CLOEXEC;
  if (mode == "r")
    flags |= O_RDONLY;
  else if (mode == "r+")
    flags |= O_RDWR;
  else if (mode == "w+")
    flags |= O_RDWR | O_CREAT | O_TRUNC;
  else if (mode == "a+")
    flags |= O_RDWR | O_CREAT;
  else
    ThrowCode(env, "EINVAL", "file mode must be 'r', 'r+', 'w+' or 'a+'");
  int fd = open(path.c_str(), flags, 0644);
  if (fd < 0) ThrowErrno(env, errno, "open " + path);
  return Napi::Number::New(env, fd);
}

static Napi::Value Pread(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  Bytes b = ArgBytes(info, 1, "buf");
  off_t pos = static_cast<off_t>(ArgInt(info, 2, "position", 0, INT64_MAX));
  ssize_t n;
  do {
    n = pread(fd, b.data, b.length, pos);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, errno, "pread");
  return Napi::Number::New(env, static_cast<double>(n));
}

static Napi::Value Pwrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  Bytes b = ArgBytes(info, 1, "buf");
  off_t pos = static_cast<off_t>(ArgInt(info, 2, "position", 0, INT64_MAX));
  ssize_t n;
  do {
    n = pwrite(fd, b.data, b.length, pos);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, errno, "pwrite");
  return Napi::Number::New(env, static_cast<double>(n));
}

static Napi::Value Fdatasync(const Napi::CallbackInfo& info) {
  int r;
  int fd = ArgFd(info, 0, "fd");
  do {
    r = fdatasync(fd);
  } while (r < 0 && errno == EINTR);
  if (r < 0) ThrowErrno(info.Env(), errno, "fdatasync");
  return info.Env().Undefined();
}

static Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  off_t size = static_cast<off_t>(ArgInt(info, 1, "size", 0, INT64_MAX));
  if (ftruncate(fd, size) < 0) ThrowErrno(info.Env(), errno, "ftruncate");
  return info.Env().Undefined();
}

static Napi::Value FileSize(const Napi::CallbackInfo& info) {
  struct stat st;
  if (fstat(ArgFd(info, 0, "fd"), &st) < 0) ThrowErrno(info.Env(), errno, "fstat");
  return Napi::Number::New(info.Env(), static_cast<double>(st.st_size));
}

static Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  AddonState& st = State(env);
  if (st.vcpus.count(fd))
    ThrowCode(env, "EINVAL", "fd " + std::to_string(fd) + " is a vCPU: use vcpuClose");
  auto slot = st.slots.lower_bound({fd, 0});
  if (slot != st.slots.end() && slot->first.first == fd)
    ThrowCode(env, "EINVAL", "fd " + std::to_string(fd) + " is a VM with memory slots: use closeVm");
  if (close(fd) < 0 && errno != EINTR) ThrowErrno(env, errno, "close");
  return env.Undefined();
}

void InitFdio(Napi::Env env, Napi::Object exports) {
  LATSIM_EXPORT(env, exports, "eventfdCreate", EventfdCreate);
  LATSIM_EXPORT(env, exports, "eventfdRead", EventfdRead);
  LATSIM_EXPORT(env, exports, "eventfdWrite", EventfdWrite);
  LATSIM_EXPORT(env, exports, "epollCreate", EpollCreate);
  LATSIM_EXPORT(env, exports, "epollCtl", EpollCtl);
  LATSIM_EXPORT(env, exports, "epollWait", EpollWait);
  LATSIM_EXPORT(env, exports, "pollIn", PollIn);
  LATSIM_EXPORT(env, exports, "tcpListen", TcpListen);
  LATSIM_EXPORT(env, exports, "tcpAccept", TcpAccept);
  LATSIM_EXPORT(env, exports, "tcpConnect", TcpConnect);
  LATSIM_EXPORT(env, exports, "socketLocalPort", SocketLocalPort);
  LATSIM_EXPORT(env, exports, "socketError", SocketError);
  LATSIM_EXPORT(env, exports, "read", Read);
  LATSIM_EXPORT(env, exports, "write", Write);
  LATSIM_EXPORT(env, exports, "fileOpen", FileOpen);
  LATSIM_EXPORT(env, exports, "pread", Pread);
  LATSIM_EXPORT(env, exports, "pwrite", Pwrite);
  LATSIM_EXPORT(env, exports, "fdatasync", Fdatasync);
  LATSIM_EXPORT(env, exports, "ftruncate", Ftruncate);
  LATSIM_EXPORT(env, exports, "fileSize", FileSize);
  LATSIM_EXPORT(env, exports, "close", Close);
}

}  // namespace latsim
