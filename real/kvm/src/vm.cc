// System and VM ioctls of the latsim KVM addon: open /dev/kvm, API version and
// capability checks, VM creation, guest memory (mmap'd, handed to JS as an
// external ArrayBuffer without copying), memory slots with dirty logging,
// KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG into a caller's Uint32Array, KVM_ENABLE_CAP,
// KVM_RESET_DIRTY_RINGS (the rings themselves are the vCPUs', vcpu.cc),
// KVM_IOEVENTFD. Leaves out: vCPUs (vcpu.cc), interrupt controllers, any policy.
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "common.h"
#include "state.h"

namespace latsim {

static constexpr uint64_t kPageSize = 4096;

static Napi::Value OpenKvm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgPresent(info, 0) ? ArgString(info, 0, "path") : "/dev/kvm";
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENXIO || err == ENODEV)
      ThrowCode(env, "ENOKVM",
                path + " is not available (" + ErrnoName(err) +
                    "): this host offers no KVM; load kvm-intel or kvm-amd, or enable nested virtualization");
    if (err == EACCES || err == EPERM)
      ThrowCode(env, "EACCES", "permission denied opening " + path + ": add this user to the kvm group");
    ThrowErrno(env, err, "open " + path);
  }
  return Napi::Number::New(env, fd);
}

static Napi::Value GetApiVersion(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "kvmFd");
  int r = ioctl(fd, KVM_GET_API_VERSION, 0);
  if (r < 0) ThrowErrno(info.Env(), errno, "KVM_GET_API_VERSION");
  return Napi::Number::New(info.Env(), r);
}

static Napi::Value CheckExtension(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  int cap = static_cast<int>(ArgInt(info, 1, "cap", 0, INT32_MAX));
  int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);
  if (r < 0) ThrowErrno(info.Env(), errno, "KVM_CHECK_EXTENSION");
  return Napi::Number::New(info.Env(), r);
}

static Napi::Value GetVcpuMmapSize(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "kvmFd");
  int r = ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (r < 0) ThrowErrno(info.Env(), errno, "KVM_GET_VCPU_MMAP_SIZE");
  return Napi::Number::New(info.Env(), r);
}

static Napi::Value CreateVm(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "kvmFd");
  int type = ArgPresent(info, 1) ? static_cast<int>(ArgInt(info, 1, "type", 0, INT32_MAX)) : 0;
  int vm;
  do {
    vm = ioctl(fd, KVM_CREATE_VM, type);
  } while (vm < 0 && errno == EINTR);
  if (vm < 0) ThrowErrno(info.Env(), errno, "KVM_CREATE_VM");
  return Napi::Number::New(info.Env(), vm);
}

static Napi::Value CloseVm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int vm = ArgFd(info, 0, "vmFd");
  CloseVcpusOfVm(env, vm);
  AddonState& st = State(env);
  for (auto it = st.slots.begin(); it != st.slots.end();) {
    if (it->first.first == vm)
      it = st.slots.erase(it);
    else
      ++it;
  }
  if (close(vm) < 0) ThrowErrno(env, errno, "close");
  return env.Undefined();
}

static Napi::Value MmapGuestMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t size = static_cast<uint64_t>(ArgInt(info, 0, "sizeBytes", 1, INT64_MAX));
  if (size % kPageSize != 0) ThrowCode(env, "EINVAL", "guest memory size must be a multiple of 4096");
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) ThrowErrno(env, errno, "mmap");
  size_t* hint = new size_t(size);
  return Napi::ArrayBuffer::New(
      env, p, size,
      [](Napi::Env, void* data, size_t* len) {
        munmap(data, *len);
        delete len;
      },
      hint);
}

static Napi::Value SetUserMemoryRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int vm = ArgFd(info, 0, "vmFd");
  uint32_t slot = static_cast<uint32_t>(ArgInt(info, 1, "slot", 0, UINT16_MAX));
  uint32_t flags = static_cast<uint32_t>(ArgInt(info, 2, "flags", 0, UINT32_MAX));
  uint64_t gpa = ArgU64(info, 3, "guestPhysAddr");
  AddonState& st = State(env);
  struct kvm_userspace_memory_region r;
  memset(&r, 0, sizeof r);
  r.slot = slot;
  r.flags = flags;
  r.guest_phys_addr = gpa;
  if (!ArgPresent(info, 4)) {  // no buffer: delete the slot
    r.memory_size = 0;
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) ThrowErrno(env, errno, "KVM_SET_USER_MEMORY_REGION");
    st.slots.erase({vm, slot});
    return env.Undefined();
  }
  if (!info[4].IsArrayBuffer()) ThrowCode(env, "EINVAL", "argument 4 (buffer) must be an ArrayBuffer");
  Napi::ArrayBuffer buf = info[4].As<Napi::ArrayBuffer>();
  uint64_t offset = ArgPresent(info, 5) ? ArgU64(info, 5, "offset") : 0;
  uint64_t size = ArgPresent(info, 6) ? ArgU64(info, 6, "size") : buf.ByteLength() - offset;
  if (offset > buf.ByteLength() || size > buf.ByteLength() - offset || size == 0)
    ThrowCode(env, "EINVAL", "memory region [offset, offset+size) must lie inside the buffer and be non-empty");
  uint64_t host = reinterpret_cast<uint64_t>(buf.Data()) + offset;
  if (gpa % kPageSize || size % kPageSize || host % kPageSize)
    ThrowCode(env, "EINVAL", "guest address, size and host address of a memory region must be 4096-aligned");
  r.memory_size = size;
  r.userspace_addr = host;
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) ThrowErrno(env, errno, "KVM_SET_USER_MEMORY_REGION");
  Slot& s = st.slots[{vm, slot}];
  s.guest_phys_addr = gpa;
  s.memory_size = size;
  s.buffer = Napi::Persistent(buf);
  return env.Undefined();
}

static const Slot& FindSlot(Napi::Env env, int vm, uint32_t slot) {
  AddonState& st = State(env);
  auto it = st.slots.find({vm, slot});
  if (it == st.slots.end())
    ThrowCode(env, "ENOENT", "no memory slot " + std::to_string(slot) + " was set on this VM through this addon");
  return it->second;
}

static uint64_t BitmapBytes(uint64_t pages) { return ((pages + 63) / 64) * 8; }

static Napi::Value GetDirtyLog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int vm = ArgFd(info, 0, "vmFd");
  uint32_t slot = static_cast<uint32_t>(ArgInt(info, 1, "slot", 0, UINT16_MAX));
  Bytes bm = ArgU32Array(info, 2, "bitmap");
  const Slot& s = FindSlot(env, vm, slot);
  uint64_t need = BitmapBytes(s.memory_size / kPageSize);
  // KVM writes whole 64-bit words: ceil(pages / 64) * 2 Uint32 words.
  if (bm.length < need)
    ThrowCode(env, "EINVAL", "dirty bitmap needs " + std::to_string(need / 4) + " Uint32 words for this slot");
  struct kvm_dirty_log log;
  memset(&log, 0, sizeof log);
  log.slot = slot;
  log.dirty_bitmap = bm.data;
  if (ioctl(vm, KVM_GET_DIRTY_LOG, &log) < 0) ThrowErrno(env, errno, "KVM_GET_DIRTY_LOG");
  return env.Undefined();
}

static Napi::Value ClearDirtyLog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int vm = ArgFd(info, 0, "vmFd");
  uint32_t slot = static_cast<uint32_t>(ArgInt(info, 1, "slot", 0, UINT16_MAX));
  uint64_t first = static_cast<uint64_t>(ArgInt(info, 2, "firstPage", 0, INT64_MAX));
  uint64_t num = static_cast<uint64_t>(ArgInt(info, 3, "numPages", 1, UINT32_MAX));
  Bytes bm = ArgU32Array(info, 4, "bitmap");
  const Slot& s = FindSlot(env, vm, slot);
  uint64_t pages = s.memory_size / kPageSize;
  if (first % 64 != 0) ThrowCode(env, "EINVAL", "firstPage must be a multiple of 64");
  if (first + num > pages) ThrowCode(env, "EINVAL", "firstPage + numPages exceeds the slot");
  if (num % 64 != 0 && first + num != pages)
    ThrowCode(env, "EINVAL", "numPages must be a multiple of 64 unless the range reaches the end of the slot");
  if (bm.length < BitmapBytes(num)) ThrowCode(env, "EINVAL", "clear bitmap is too small for numPages");
  struct kvm_clear_dirty_log c;
  memset(&c, 0, sizeof c);
  c.slot = slot;
  c.num_pages = static_cast<uint32_t>(num);
  c.first_page = first;
  c.dirty_bitmap = bm.data;
  if (ioctl(vm, KVM_CLEAR_DIRTY_LOG, &c) < 0) ThrowErrno(env, errno, "KVM_CLEAR_DIRTY_LOG");
  return env.Undefined();
}

static Napi::Value EnableCap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t cap = static_cast<uint32_t>(ArgInt(info, 1, "cap", 0, UINT32_MAX));
  struct kvm_enable_cap ec;
  memset(&ec, 0, sizeof ec);
  ec.cap = cap;
  for (size_t i = 0; i < 4; i++)
    if (ArgPresent(info, 2 + i)) ec.args[i] = ArgU64(info, 2 + i, "arg");
  if (ioctl(fd, KVM_ENABLE_CAP, &ec) < 0) ThrowErrno(env, errno, "KVM_ENABLE_CAP");
  return env.Undefined();
}

// KVM_RESET_DIRTY_RINGS: write-protects again the pages of every collected ring entry.
static Napi::Value ResetDirtyRings(const Napi::CallbackInfo& info) {
  int vm = ArgFd(info, 0, "vmFd");
  int r = ioctl(vm, KVM_RESET_DIRTY_RINGS, 0);
  if (r < 0) ThrowErrno(info.Env(), errno, "KVM_RESET_DIRTY_RINGS");
  return Napi::Number::New(info.Env(), r);
}

static Napi::Value SetTssAddr(const Napi::CallbackInfo& info) {
  int vm = ArgFd(info, 0, "vmFd");
  uint64_t addr = ArgU64(info, 1, "addr");
  if (ioctl(vm, KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)) < 0)
    ThrowErrno(info.Env(), errno, "KVM_SET_TSS_ADDR");
  return info.Env().Undefined();
}

// Fills a kvm_ioeventfd from (vmFd, fd, addr, len, pio, datamatch?) arguments at `base`.
static void IoeventfdArgs(const Napi::CallbackInfo& info, size_t base, struct kvm_ioeventfd* io) {
  memset(io, 0, sizeof *io);
  io->addr = ArgU64(info, base, "addr");
  io->len = static_cast<uint32_t>(ArgInt(info, base + 1, "len", 0, 8));
  if (ArgBool(info, base + 2, "pio", false)) io->flags |= KVM_IOEVENTFD_FLAG_PIO;
  if (ArgPresent(info, base + 3)) {
    io->flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    io->datamatch = ArgU64(info, base + 3, "datamatch");
  }
}

static Napi::Value RegisterIoeventfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int vm = ArgFd(info, 0, "vmFd");
  struct kvm_ioeventfd io;
  IoeventfdArgs(info, 1, &io);
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) ThrowErrno(env, errno, "eventfd");
  io.fd = efd;
  if (ioctl(vm, KVM_IOEVENTFD, &io) < 0) {
    int err = errno;
    close(efd);
    ThrowErrno(env, err, "KVM_IOEVENTFD");
  }
  return Napi::Number::New(env, efd);
}

static Napi::Value UnregisterIoeventfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int vm = ArgFd(info, 0, "vmFd");
  int efd = ArgFd(info, 1, "eventFd");
  struct kvm_ioeventfd io;
  IoeventfdArgs(info, 2, &io);
  io.fd = efd;
  io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
  if (ioctl(vm, KVM_IOEVENTFD, &io) < 0) ThrowErrno(env, errno, "KVM_IOEVENTFD (deassign)");
  return env.Undefined();
}

void InitVm(Napi::Env env, Napi::Object exports) {
  LATSIM_EXPORT(env, exports, "openKvm", OpenKvm);
  LATSIM_EXPORT(env, exports, "getApiVersion", GetApiVersion);
  LATSIM_EXPORT(env, exports, "checkExtension", CheckExtension);
  LATSIM_EXPORT(env, exports, "getVcpuMmapSize", GetVcpuMmapSize);
  LATSIM_EXPORT(env, exports, "createVm", CreateVm);
  LATSIM_EXPORT(env, exports, "closeVm", CloseVm);
  LATSIM_EXPORT(env, exports, "mmapGuestMemory", MmapGuestMemory);
  LATSIM_EXPORT(env, exports, "setUserMemoryRegion", SetUserMemoryRegion);
  LATSIM_EXPORT(env, exports, "getDirtyLog", GetDirtyLog);
  LATSIM_EXPORT(env, exports, "clearDirtyLog", ClearDirtyLog);
  LATSIM_EXPORT(env, exports, "enableCap", EnableCap);
  LATSIM_EXPORT(env, exports, "setTssAddr", SetTssAddr);
  LATSIM_EXPORT(env, exports, "resetDirtyRings", ResetDirtyRings);
  LATSIM_EXPORT(env, exports, "registerIoeventfd", RegisterIoeventfd);
  LATSIM_EXPORT(env, exports, "unregisterIoeventfd", UnregisterIoeventfd);
}

}  // namespace latsim
