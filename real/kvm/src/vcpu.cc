// vCPU threads, exit records and register state of the latsim KVM addon (see vcpu.h
// for the handshake). Exports createVcpu, vcpuStart, vcpuReadExit, vcpuComplete,
// vcpuPause, vcpuResume, vcpuPhase, vcpuClose and get/set of regs, sregs and FPU.
// Leaves out: MSRs, XSAVE, LAPIC and vCPU events (needed for guests that use
// interrupts or syscalls), and KVM_SET_CPUID2 (the payload runs without CPUID setup).
#include "vcpu.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>

#include "common.h"
#include "state.h"

namespace latsim {

// ---------------------------------------------------------------------------
// Kick signal

int KickSignal() { return SIGRTMIN + 7; }

static void OnKick(int) {}

void InstallKickHandler() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnKick;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
  sigaction(KickSignal(), &sa, nullptr);
}

const char* PhaseName(Phase p) {
  switch (p) {
    case Phase::Created: return "created";
    case Phase::Running: return "running";
    case Phase::Exit: return "exit";
    case Phase::Paused: return "paused";
    case Phase::Ended: return "ended";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// Vcpu

Vcpu::Vcpu(int vm_fd, int id, int vcpu_fd, struct kvm_run* run, size_t run_size, int exit_fd)
    : vm_fd_(vm_fd), id_(id), vcpu_fd_(vcpu_fd), run_(run), run_size_(run_size), exit_fd_(exit_fd) {}

Vcpu::~Vcpu() {
  Terminate();
  if (ring_ != nullptr) munmap(ring_, static_cast<size_t>(ring_entries_) * sizeof(struct kvm_dirty_gfn));
  munmap(run_, run_size_);
  close(vcpu_fd_);
  close(exit_fd_);
}

std::string Vcpu::Start() {
  std::lock_guard<std::mutex> lk(mu_);
  if (phase_ != Phase::Created) return std::string("vCPU is already ") + PhaseName(phase_);
  // The new thread inherits a mask with every signal blocked, so process-directed
  // signals keep going to Node's threads; Loop() unblocks only the kick signal.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    thread_ = std::thread([this] { Loop(); });
  } catch (const std::exception& e) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return std::string("cannot start vCPU thread: ") + e.what();
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  tid_ = thread_.native_handle();
  thread_started_ = true;
  phase_ = Phase::Running;
  return "";
}

void Vcpu::Kick() {
  if (thread_started_) pthread_kill(tid_, KickSignal());
}

void Vcpu::PostLocked(ExitRecord&& rec) {
  record_ = std::move(rec);
  record_unread_ = true;
  uint64_t one = 1;
  ssize_t n = write(exit_fd_, &one, sizeof one);
  (void)n;  // a full eventfd counter still reads as readable
}

bool Vcpu::DecodeExit(ExitRecord* rec) {
  rec->raw_reason = run_->exit_reason;
  switch (run_->exit_reason) {
    case KVM_EXIT_IO: {
      rec->kind = ExitKind::Io;
      rec->io_in = run_->io.direction == KVM_EXIT_IO_IN;
      rec->port = run_->io.port;
      rec->size = run_->io.size;
      rec->count = run_->io.count;
      size_t len = static_cast<size_t>(rec->size) * rec->count;
      if (run_->io.data_offset + len > run_size_) {
        rec->kind = ExitKind::Error;
        rec->terminal = true;
        rec->code = "EFAULT";
        rec->message = "KVM_EXIT_IO data lies outside kvm_run";
        return true;
      }
      if (!rec->io_in) {
        const uint8_t* p = reinterpret_cast<const uint8_t*>(run_) + run_->io.data_offset;
        rec->data.assign(p, p + len);
      }
      return true;
    }
    case KVM_EXIT_MMIO:
      rec->kind = ExitKind::Mmio;
      rec->mmio_addr = run_->mmio.phys_addr;
      rec->mmio_len = run_->mmio.len > 8 ? 8 : run_->mmio.len;
      rec->mmio_write = run_->mmio.is_write != 0;
      if (rec->mmio_write) rec->data.assign(run_->mmio.data, run_->mmio.data + rec->mmio_len);
      return true;
    case KVM_EXIT_HLT:
      rec->kind = ExitKind::Hlt;
      return true;
    case KVM_EXIT_DIRTY_RING_FULL:
      // Not terminal: JS reaps the rings, resets them, and answers the exit.
      rec->kind = ExitKind::DirtyRingFull;
      return true;
    case KVM_EXIT_SHUTDOWN:
      rec->kind = ExitKind::Shutdown;
      rec->terminal = true;
      rec->code = "ETRIPLEFAULT";
      rec->message = "vCPU " + std::to_string(id_) + " shut down (triple fault)";
      return true;
    case KVM_EXIT_FAIL_ENTRY:
      rec->kind = ExitKind::FailEntry;
      rec->terminal = true;
      rec->code = "EFAILENTRY";
      rec->detail = run_->fail_entry.hardware_entry_failure_reason;
      rec->message = "vCPU " + std::to_string(id_) + " failed VM entry (hardware reason " +
                     std::to_string(rec->detail) + ")";
      return true;
    case KVM_EXIT_INTERNAL_ERROR:
      rec->kind = ExitKind::InternalError;
      rec->terminal = true;
      rec->code = "EINTERNAL";
      rec->detail = run_->internal.suberror;
      rec->message = "vCPU " + std::to_string(id_) + " hit a KVM internal error (suberror " +
                     std::to_string(rec->detail) + ")";
      return true;
    case KVM_EXIT_SYSTEM_EVENT:
      rec->kind = ExitKind::SystemEvent;
      rec->terminal = true;
      rec->code = "ESYSTEMEVENT";
      rec->detail = run_->system_event.type;
      rec->message = "vCPU " + std::to_string(id_) + " raised system event " + std::to_string(rec->detail);
      return true;
    default:
      rec->kind = ExitKind::Unknown;
      rec->terminal = true;
      rec->code = "EEXIT";
      rec->message = "vCPU " + std::to_string(id_) + " exited with unhandled reason " +
                     std::to_string(run_->exit_reason);
      return true;
  }
}

void Vcpu::Loop() {
  sigset_t kick;
  sigemptyset(&kick);
  sigaddset(&kick, KickSignal());
  pthread_sigmask(SIG_UNBLOCK, &kick, nullptr);

  for (;;) {
    int r = ioctl(vcpu_fd_, KVM_RUN, 0);
    int err = r < 0 ? errno : 0;
    uint64_t now = MonotonicNs();
    std::unique_lock<std::mutex> lk(mu_);
    if (terminate_requested_) break;
    bool interrupted = (r < 0 && (err == EINTR || err == EAGAIN)) || (r == 0 && run_->exit_reason == KVM_EXIT_INTR);
    if (interrupted) {
      if (pause_requested_) {
        phase_ = Phase::Paused;
        cv_.notify_all();
        cv_.wait(lk, [this] { return !pause_requested_ || terminate_requested_; });
        if (terminate_requested_) break;
        phase_ = Phase::Running;
      }
      run_->immediate_exit = 0;
      continue;
    }
    ExitRecord rec;
    rec.seq = ++seq_;
    rec.monotonic_ns = now;
    if (r < 0) {
      rec.kind = ExitKind::Error;
      rec.terminal = true;
      rec.code = ErrnoName(err);
      rec.detail = static_cast<uint64_t>(err);
      rec.message = std::string("KVM_RUN failed on vCPU ") + std::to_string(id_) + ": " + strerror(err);
    } else {
      DecodeExit(&rec);
    }
    if (rec.terminal) {
      phase_ = Phase::Ended;  // before the record is visible, so complete() sees the end
      PostLocked(std::move(rec));
      cv_.notify_all();
      return;
    }
    answered_ = false;
    PostLocked(std::move(rec));
    phase_ = Phase::Exit;
    cv_.notify_all();
    cv_.wait(lk, [this] { return answered_ || terminate_requested_; });
    if (terminate_requested_) break;
  }
  std::lock_guard<std::mutex> lk(mu_);
  phase_ = Phase::Ended;
  cv_.notify_all();
}

bool Vcpu::TakeRecord(ExitRecord* out) {
  std::lock_guard<std::mutex> lk(mu_);
  uint64_t v;
  ssize_t n = read(exit_fd_, &v, sizeof v);
  (void)n;
  if (!record_unread_) return false;
  *out = record_;
  record_unread_ = false;
  return true;
}

std::string Vcpu::Complete(const uint8_t* in, size_t in_len, std::string* msg) {
  std::lock_guard<std::mutex> lk(mu_);
  if (phase_ == Phase::Ended && !record_.code.empty()) {
    *msg = record_.message;
    return record_.code;
  }
  if (phase_ != Phase::Exit || answered_) {
    *msg = std::string("no exit awaits an answer (vCPU is ") + PhaseName(phase_) + ")";
    return "ENOEXIT";
  }
  size_t want = 0;
  uint8_t* dst = nullptr;
  if (record_.kind == ExitKind::Io && record_.io_in) {
    want = static_cast<size_t>(record_.size) * record_.count;
    dst = reinterpret_cast<uint8_t*>(run_) + run_->io.data_offset;
  } else if (record_.kind == ExitKind::Mmio && !record_.mmio_write) {
    want = record_.mmio_len;
    dst = run_->mmio.data;
  }
  if (dst != nullptr) {
    if (in == nullptr || in_len != want) {
      *msg = "this exit is a read: answer it with exactly " + std::to_string(want) + " bytes";
      return "EINVAL";
    }
    memcpy(dst, in, want);
  } else if (in != nullptr && in_len != 0) {
    *msg = "this exit is not a read: answer it without data";
    return "EINVAL";
  }
  answered_ = true;
  phase_ = Phase::Running;
  cv_.notify_all();
  return "";
}

Phase Vcpu::Pause(int timeout_ms) {
  std::unique_lock<std::mutex> lk(mu_);
  if (phase_ == Phase::Created || phase_ == Phase::Ended) return phase_;
  if (phase_ == Phase::Paused) {
    // Parked, but a Resume may be on its way (the thread has not woken yet): cancel it, so
    // the thread stays parked instead of running on behind a "paused" answer.
    pause_requested_ = true;
    run_->immediate_exit = 1;
    return phase_;
  }
  pause_requested_ = true;
  run_->immediate_exit = 1;
  if (phase_ == Phase::Running) Kick();
  cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [this] { return phase_ != Phase::Running; });
  return phase_;
}

void Vcpu::Resume() {
  std::lock_guard<std::mutex> lk(mu_);
  pause_requested_ = false;
  if (phase_ != Phase::Running) run_->immediate_exit = 0;
  cv_.notify_all();
}

void Vcpu::Terminate() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    terminate_requested_ = true;
    run_->immediate_exit = 1;
    cv_.notify_all();
  }
  if (thread_.joinable()) {
    Kick();
    thread_.join();
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (phase_ != Phase::Created) phase_ = Phase::Ended;
}

Phase Vcpu::phase() {
  std::lock_guard<std::mutex> lk(mu_);
  return phase_;
}

std::string Vcpu::MapDirtyRing(uint32_t entries) {
  if (ring_ != nullptr) return "the dirty ring is already mapped";
  if (entries == 0 || (entries & (entries - 1)) != 0) return "dirty ring entries must be a power of two";
  size_t bytes = static_cast<size_t>(entries) * sizeof(struct kvm_dirty_gfn);
  long page = sysconf(_SC_PAGESIZE);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd_,
                 static_cast<off_t>(KVM_DIRTY_LOG_PAGE_OFFSET) * page);
  if (p == MAP_FAILED) return std::string("mmap of the dirty ring: ") + strerror(errno) + " (" + ErrnoName(errno) + ")";
  ring_ = static_cast<struct kvm_dirty_gfn*>(p);
  ring_entries_ = entries;
  fetch_ = 0;
  return "";
}

int64_t Vcpu::CollectDirtyRing(uint32_t* bitmap, size_t words, uint32_t slot) {
  if (ring_ == nullptr) return -1;
  int64_t n = 0;
  for (;;) {
    struct kvm_dirty_gfn* cur = &ring_[fetch_ & (ring_entries_ - 1)];
    // Flags before the entry: pairs with the barrier of KVM's kvm_dirty_ring_push.
    if (__atomic_load_n(&cur->flags, __ATOMIC_ACQUIRE) != KVM_DIRTY_GFN_F_DIRTY) break;
    if (cur->slot == slot && cur->offset < static_cast<uint64_t>(words) * 32)
      bitmap[cur->offset >> 5] |= 1u << (cur->offset & 31);
    // Release: KVM_RESET_DIRTY_RINGS on another CPU sees the whole entry collected.
    __atomic_store_n(&cur->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
    fetch_++;
    n++;
  }
  return n;
}

int64_t Vcpu::DirtyRingPending() {
  if (ring_ == nullptr) return -1;
  int64_t n = 0;
  for (uint32_t i = fetch_; n < ring_entries_; i++, n++) {
    if (__atomic_load_n(&ring_[i & (ring_entries_ - 1)].flags, __ATOMIC_ACQUIRE) != KVM_DIRTY_GFN_F_DIRTY) break;
  }
  return n;
}

// ---------------------------------------------------------------------------
// JS bindings

static Vcpu& FindVcpu(Napi::Env env, int fd) {
  AddonState& st = State(env);
  auto it = st.vcpus.find(fd);
  if (it == st.vcpus.end()) ThrowCode(env, "EBADF", "fd " + std::to_string(fd) + " is not a vCPU of this addon");
  return *it->second;
}

// State ioctls on a vCPU inside KVM_RUN would block the caller until the guest
// exits; refuse them instead.
static Vcpu& FindStoppedVcpu(Napi::Env env, int fd) {
  Vcpu& v = FindVcpu(env, fd);
  if (v.phase() == Phase::Running)
    ThrowCode(env, "EBUSY", "vCPU " + std::to_string(v.id()) + " is running: pause it first");
  return v;
}

static Napi::Value CreateVcpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int kvm = ArgFd(info, 0, "kvmFd");
  int vm = ArgFd(info, 1, "vmFd");
  int id = static_cast<int>(ArgInt(info, 2, "id", 0, 4095));
  int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size < 0) ThrowErrno(env, errno, "KVM_GET_VCPU_MMAP_SIZE");
  int vfd = ioctl(vm, KVM_CREATE_VCPU, id);
  if (vfd < 0) ThrowErrno(env, errno, "KVM_CREATE_VCPU");
  void* run = mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED, vfd, 0);
  if (run == MAP_FAILED) {
    int err = errno;
    close(vfd);
    ThrowErrno(env, err, "mmap kvm_run");
  }
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) {
    int err = errno;
    munmap(run, static_cast<size_t>(size));
    close(vfd);
    ThrowErrno(env, err, "eventfd");
  }
  State(env).vcpus[vfd] =
      std::make_unique<Vcpu>(vm, id, vfd, static_cast<struct kvm_run*>(run), static_cast<size_t>(size), efd);
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", vfd);
  o.Set("exitFd", efd);
  return o;
}

static Napi::Value VcpuStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindVcpu(env, ArgFd(info, 0, "vcpuFd"));
  std::string err = v.Start();
  if (!err.empty()) ThrowCode(env, "EBUSY", err);
  return env.Undefined();
}

static const char* KindName(ExitKind k) {
  switch (k) {
    case ExitKind::Io: return "io";
    case ExitKind::Mmio: return "mmio";
    case ExitKind::Hlt: return "hlt";
    case ExitKind::DirtyRingFull: return "dirty_ring_full";
    case ExitKind::Shutdown: return "shutdown";
    case ExitKind::FailEntry: return "fail_entry";
    case ExitKind::InternalError: return "internal_error";
    case ExitKind::SystemEvent: return "system_event";
    case ExitKind::Error: return "error";
    case ExitKind::Unknown: return "unknown";
  }
  return "unknown";
}

static Napi::Value VcpuReadExit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindVcpu(env, ArgFd(info, 0, "vcpuFd"));
  ExitRecord r;
  if (!v.TakeRecord(&r)) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("vcpu", v.id());
  o.Set("seq", Napi::Number::New(env, static_cast<double>(r.seq)));
  o.Set("monotonicNs", Napi::BigInt::New(env, r.monotonic_ns));
  o.Set("reason", KindName(r.kind));
  o.Set("rawReason", r.raw_reason);
  o.Set("terminal", r.terminal);
  if (r.kind == ExitKind::Io) {
    o.Set("direction", r.io_in ? "in" : "out");
    o.Set("port", r.port);
    o.Set("size", r.size);
    o.Set("count", r.count);
  } else if (r.kind == ExitKind::Mmio) {
    o.Set("addr", Napi::Number::New(env, static_cast<double>(r.mmio_addr)));
    o.Set("len", r.mmio_len);
    o.Set("isWrite", r.mmio_write);
  }
  if ((r.kind == ExitKind::Io && !r.io_in) || (r.kind == ExitKind::Mmio && r.mmio_write)) {
    Napi::Uint8Array d = Napi::Uint8Array::New(env, r.data.size());
    if (!r.data.empty()) memcpy(d.Data(), r.data.data(), r.data.size());
    o.Set("data", d);
  }
  if (r.terminal) {
    o.Set("code", r.code);
    o.Set("message", r.message);
    o.Set("detail", Napi::Number::New(env, static_cast<double>(r.detail)));
  }
  return o;
}

static Napi::Value VcpuComplete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindVcpu(env, ArgFd(info, 0, "vcpuFd"));
  const uint8_t* data = nullptr;
  size_t len = 0;
  if (ArgPresent(info, 1)) {
    Bytes b = ArgBytes(info, 1, "data");
    data = b.data;
    len = b.length;
  }
  std::string msg;
  std::string code = v.Complete(data, len, &msg);
  if (!code.empty()) ThrowCode(env, code, msg);
  return env.Undefined();
}

static Napi::Value VcpuPause(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindVcpu(env, ArgFd(info, 0, "vcpuFd"));
  int timeout = ArgPresent(info, 1) ? static_cast<int>(ArgInt(info, 1, "timeoutMs", 0, INT32_MAX)) : 5000;
  return Napi::String::New(env, PhaseName(v.Pause(timeout)));
}

static Napi::Value VcpuResume(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FindVcpu(env, ArgFd(info, 0, "vcpuFd")).Resume();
  return env.Undefined();
}

static Napi::Value VcpuPhase(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::String::New(env, PhaseName(FindVcpu(env, ArgFd(info, 0, "vcpuFd")).phase()));
}

static Napi::Value VcpuClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "vcpuFd");
  FindVcpu(env, fd);
  State(env).vcpus.erase(fd);  // ~Vcpu stops the thread and closes the fds
  return env.Undefined();
}

void CloseVcpusOfVm(Napi::Env env, int vm_fd) {
  AddonState& st = State(env);
  for (auto it = st.vcpus.begin(); it != st.vcpus.end();) {
    if (it->second->vm_fd() == vm_fd)
      it = st.vcpus.erase(it);
    else
      ++it;
  }
}

// ---- registers ------------------------------------------------------------

static Napi::Value Big(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

// Reads obj[key] into *dst if present (number or bigint).
static void Take64(Napi::Env env, Napi::Object o, const char* key, uint64_t* dst) {
  if (o.Has(key)) {
    Napi::Value v = o.Get(key);
    if (!v.IsUndefined()) *dst = ValueU64(env, v, key);
  }
}
template <typename T>
static void TakeSmall(Napi::Env env, Napi::Object o, const char* key, T* dst) {
  uint64_t v = *dst;
  Take64(env, o, key, &v);
  if (v > static_cast<uint64_t>(static_cast<T>(~T(0)))) ThrowCode(env, "EINVAL", std::string(key) + " is out of range");
  *dst = static_cast<T>(v);
}

static Napi::Object ArgObject(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsObject())
    ThrowCode(info.Env(), "EINVAL", std::string("argument ") + std::to_string(i) + " (" + name + ") must be an object");
  return info[i].As<Napi::Object>();
}

#define LATSIM_GPRS(X) \
  X(rax) X(rbx) X(rcx) X(rdx) X(rsi) X(rdi) X(rsp) X(rbp) X(r8) X(r9) X(r10) X(r11) X(r12) X(r13) X(r14) X(r15) \
  X(rip) X(rflags)

static Napi::Value GetRegs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindStoppedVcpu(env, ArgFd(info, 0, "vcpuFd"));
  struct kvm_regs r;
  if (ioctl(v.fd(), KVM_GET_REGS, &r) < 0) ThrowErrno(env, errno, "KVM_GET_REGS");
  Napi::Object o = Napi::Object::New(env);
#define X(f) o.Set(#f, Big(env, r.f));
  LATSIM_GPRS(X)
#undef X
  return o;
}

static Napi::Value SetRegs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindStoppedVcpu(env, ArgFd(info, 0, "vcpuFd"));
  Napi::Object o = ArgObject(info, 1, "regs");
  struct kvm_regs r;
  if (ioctl(v.fd(), KVM_GET_REGS, &r) < 0) ThrowErrno(env, errno, "KVM_GET_REGS");
#define X(f) Take64(env, o, #f, reinterpret_cast<uint64_t*>(&r.f));
  LATSIM_GPRS(X)
#undef X
  if (ioctl(v.fd(), KVM_SET_REGS, &r) < 0) ThrowErrno(env, errno, "KVM_SET_REGS");
  return env.Undefined();
}

#define LATSIM_SEGMENTS(X) X(cs) X(ds) X(es) X(fs) X(gs) X(ss) X(tr) X(ldt)
#define LATSIM_SEG_SMALL(X) X(type) X(present) X(dpl) X(db) X(s) X(l) X(g) X(avl) X(unusable)
#define LATSIM_CRS(X) X(cr0) X(cr2) X(cr3) X(cr4) X(cr8) X(efer) X(apic_base)

static Napi::Object SegToJs(Napi::Env env, const struct kvm_segment& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("base", Big(env, s.base));
  o.Set("limit", s.limit);
  o.Set("selector", s.selector);
#define X(f) o.Set(#f, s.f);
  LATSIM_SEG_SMALL(X)
#undef X
  return o;
}

static void SegFromJs(Napi::Env env, Napi::Object o, struct kvm_segment* s) {
  Take64(env, o, "base", reinterpret_cast<uint64_t*>(&s->base));
  TakeSmall(env, o, "limit", &s->limit);
  TakeSmall(env, o, "selector", &s->selector);
#define X(f) TakeSmall(env, o, #f, &s->f);
  LATSIM_SEG_SMALL(X)
#undef X
}

static Napi::Value GetSregs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindStoppedVcpu(env, ArgFd(info, 0, "vcpuFd"));
  struct kvm_sregs s;
  if (ioctl(v.fd(), KVM_GET_SREGS, &s) < 0) ThrowErrno(env, errno, "KVM_GET_SREGS");
  Napi::Object o = Napi::Object::New(env);
#define X(f) o.Set(#f, SegToJs(env, s.f));
  LATSIM_SEGMENTS(X)
#undef X
  Napi::Object gdt = Napi::Object::New(env);
  gdt.Set("base", Big(env, s.gdt.base));
  gdt.Set("limit", s.gdt.limit);
  o.Set("gdt", gdt);
  Napi::Object idt = Napi::Object::New(env);
  idt.Set("base", Big(env, s.idt.base));
  idt.Set("limit", s.idt.limit);
  o.Set("idt", idt);
#define X(f) o.Set(#f, Big(env, s.f));
  LATSIM_CRS(X)
#undef X
  Napi::Array bm = Napi::Array::New(env, sizeof(s.interrupt_bitmap) / sizeof(s.interrupt_bitmap[0]));
  for (uint32_t i = 0; i < bm.Length(); i++) bm.Set(i, Big(env, s.interrupt_bitmap[i]));
  o.Set("interrupt_bitmap", bm);
  return o;
}

static Napi::Value SetSregs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindStoppedVcpu(env, ArgFd(info, 0, "vcpuFd"));
  Napi::Object o = ArgObject(info, 1, "sregs");
  struct kvm_sregs s;
  if (ioctl(v.fd(), KVM_GET_SREGS, &s) < 0) ThrowErrno(env, errno, "KVM_GET_SREGS");
#define X(f) \
  if (o.Has(#f) && o.Get(#f).IsObject()) SegFromJs(env, o.Get(#f).As<Napi::Object>(), &s.f);
  LATSIM_SEGMENTS(X)
#undef X
  if (o.Has("gdt") && o.Get("gdt").IsObject()) {
    Napi::Object d = o.Get("gdt").As<Napi::Object>();
    Take64(env, d, "base", reinterpret_cast<uint64_t*>(&s.gdt.base));
    TakeSmall(env, d, "limit", &s.gdt.limit);
  }
  if (o.Has("idt") && o.Get("idt").IsObject()) {
    Napi::Object d = o.Get("idt").As<Napi::Object>();
    Take64(env, d, "base", reinterpret_cast<uint64_t*>(&s.idt.base));
    TakeSmall(env, d, "limit", &s.idt.limit);
  }
#define X(f) Take64(env, o, #f, reinterpret_cast<uint64_t*>(&s.f));
  LATSIM_CRS(X)
#undef X
  if (o.Has("interrupt_bitmap") && o.Get("interrupt_bitmap").IsArray()) {
    Napi::Array bm = o.Get("interrupt_bitmap").As<Napi::Array>();
    uint32_t n = sizeof(s.interrupt_bitmap) / sizeof(s.interrupt_bitmap[0]);
    for (uint32_t i = 0; i < n && i < bm.Length(); i++)
      s.interrupt_bitmap[i] = ValueU64(env, bm.Get(i), "interrupt_bitmap");
  }
  if (ioctl(v.fd(), KVM_SET_SREGS, &s) < 0) ThrowErrno(env, errno, "KVM_SET_SREGS");
  return env.Undefined();
}

static Napi::Value GetFpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindStoppedVcpu(env, ArgFd(info, 0, "vcpuFd"));
  struct kvm_fpu f;
  if (ioctl(v.fd(), KVM_GET_FPU, &f) < 0) ThrowErrno(env, errno, "KVM_GET_FPU");
  Napi::Object o = Napi::Object::New(env);
  Napi::Uint8Array fpr = Napi::Uint8Array::New(env, sizeof f.fpr);
  memcpy(fpr.Data(), f.fpr, sizeof f.fpr);
  Napi::Uint8Array xmm = Napi::Uint8Array::New(env, sizeof f.xmm);
  memcpy(xmm.Data(), f.xmm, sizeof f.xmm);
  o.Set("fpr", fpr);
  o.Set("fcw", f.fcw);
  o.Set("fsw", f.fsw);
  o.Set("ftwx", f.ftwx);
  o.Set("last_opcode", f.last_opcode);
  o.Set("last_ip", Big(env, f.last_ip));
  o.Set("last_dp", Big(env, f.last_dp));
  o.Set("xmm", xmm);
  o.Set("mxcsr", f.mxcsr);
  return o;
}

static void TakeBytes(Napi::Env env, Napi::Object o, const char* key, void* dst, size_t len) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return;
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().ByteLength() != len)
    ThrowCode(env, "EINVAL", std::string(key) + " must be a Uint8Array of " + std::to_string(len) + " bytes");
  void* src = nullptr;
  if (napi_get_typedarray_info(env, v, nullptr, nullptr, &src, nullptr, nullptr) != napi_ok)
    ThrowCode(env, "EINVAL", std::string(key) + " cannot be read");
  memcpy(dst, src, len);
}

static Napi::Value SetFpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindStoppedVcpu(env, ArgFd(info, 0, "vcpuFd"));
  Napi::Object o = ArgObject(info, 1, "fpu");
  struct kvm_fpu f;
  if (ioctl(v.fd(), KVM_GET_FPU, &f) < 0) ThrowErrno(env, errno, "KVM_GET_FPU");
  TakeBytes(env, o, "fpr", f.fpr, sizeof f.fpr);
  TakeBytes(env, o, "xmm", f.xmm, sizeof f.xmm);
  TakeSmall(env, o, "fcw", &f.fcw);
  TakeSmall(env, o, "fsw", &f.fsw);
  TakeSmall(env, o, "ftwx", &f.ftwx);
  TakeSmall(env, o, "last_opcode", &f.last_opcode);
  Take64(env, o, "last_ip", reinterpret_cast<uint64_t*>(&f.last_ip));
  Take64(env, o, "last_dp", reinterpret_cast<uint64_t*>(&f.last_dp));
  TakeSmall(env, o, "mxcsr", &f.mxcsr);
  if (ioctl(v.fd(), KVM_SET_FPU, &f) < 0) ThrowErrno(env, errno, "KVM_SET_FPU");
  return env.Undefined();
}

static Napi::Value VcpuMapDirtyRing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindVcpu(env, ArgFd(info, 0, "vcpuFd"));
  uint32_t entries = static_cast<uint32_t>(ArgInt(info, 1, "entries", 1, 1 << 20));
  std::string err = v.MapDirtyRing(entries);
  if (!err.empty()) ThrowCode(env, "EINVAL", err);
  return env.Undefined();
}

static Napi::Value VcpuCollectDirtyRing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindVcpu(env, ArgFd(info, 0, "vcpuFd"));
  Bytes bm = ArgU32Array(info, 1, "bitmap");
  uint32_t slot = static_cast<uint32_t>(ArgInt(info, 2, "slot", 0, UINT32_MAX));
  int64_t n = v.CollectDirtyRing(reinterpret_cast<uint32_t*>(bm.data), bm.length / 4, slot);
  if (n < 0) ThrowCode(env, "ENOENT", "vCPU " + std::to_string(v.id()) + " has no dirty ring mapped");
  return Napi::Number::New(env, static_cast<double>(n));
}

static Napi::Value VcpuDirtyRingPending(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindVcpu(env, ArgFd(info, 0, "vcpuFd"));
  int64_t n = v.DirtyRingPending();
  if (n < 0) ThrowCode(env, "ENOENT", "vCPU " + std::to_string(v.id()) + " has no dirty ring mapped");
  return Napi::Number::New(env, static_cast<double>(n));
}

static Napi::Value GetTscKhz(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Vcpu& v = FindVcpu(env, ArgFd(info, 0, "vcpuFd"));
  int r = ioctl(v.fd(), KVM_GET_TSC_KHZ, 0);
  if (r < 0) ThrowErrno(env, errno, "KVM_GET_TSC_KHZ");
  return Napi::Number::New(env, r);
}

void InitVcpu(Napi::Env env, Napi::Object exports) {
  LATSIM_EXPORT(env, exports, "createVcpu", CreateVcpu);
  LATSIM_EXPORT(env, exports, "vcpuStart", VcpuStart);
  LATSIM_EXPORT(env, exports, "vcpuReadExit", VcpuReadExit);
  LATSIM_EXPORT(env, exports, "vcpuComplete", VcpuComplete);
  LATSIM_EXPORT(env, exports, "vcpuPause", VcpuPause);
  LATSIM_EXPORT(env, exports, "vcpuResume", VcpuResume);
  LATSIM_EXPORT(env, exports, "vcpuPhase", VcpuPhase);
  LATSIM_EXPORT(env, exports, "vcpuClose", VcpuClose);
  LATSIM_EXPORT(env, exports, "getRegs", GetRegs);
  LATSIM_EXPORT(env, exports, "setRegs", SetRegs);
  LATSIM_EXPORT(env, exports, "getSregs", GetSregs);
  LATSIM_EXPORT(env, exports, "setSregs", SetSregs);
  LATSIM_EXPORT(env, exports, "getFpu", GetFpu);
  LATSIM_EXPORT(env, exports, "setFpu", SetFpu);
  LATSIM_EXPORT(env, exports, "getTscKhz", GetTscKhz);
  LATSIM_EXPORT(env, exports, "vcpuMapDirtyRing", VcpuMapDirtyRing);
  LATSIM_EXPORT(env, exports, "vcpuCollectDirtyRing", VcpuCollectDirtyRing);
  LATSIM_EXPORT(env, exports, "vcpuDirtyRingPending", VcpuDirtyRingPending);
}

}  // namespace latsim
