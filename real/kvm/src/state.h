// Per-environment state of the latsim KVM addon: which guest-memory buffers
// back which memory slots (kept alive while KVM uses them, and sized so dirty
// bitmaps can be checked), and the live vCPU runners by vCPU fd.
// Leaves out: any VM-wide policy; it only tracks ownership.
#pragma once

#include <napi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <utility>

namespace latsim {

class Vcpu;

struct Slot {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  Napi::Reference<Napi::ArrayBuffer> buffer;  // strong: memory stays mapped while the slot exists
};

struct AddonState {
  std::map<std::pair<int, uint32_t>, Slot> slots;  // (vm fd, slot id)
  std::map<int, std::unique_ptr<Vcpu>> vcpus;      // by vCPU fd
  bool stopped = false;

  // Stops and joins every vCPU thread (environment teardown).
  void StopAllVcpus();
  ~AddonState();
};

AddonState& State(Napi::Env env);

void InitVm(Napi::Env env, Napi::Object exports);
void InitVcpu(Napi::Env env, Napi::Object exports);
void InitFdio(Napi::Env env, Napi::Object exports);

// Removes (stops, joins, closes) every vCPU created on `vm_fd`.
void CloseVcpusOfVm(Napi::Env env, int vm_fd);

}  // namespace latsim
