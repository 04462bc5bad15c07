// Entry point of the latsim KVM addon: per-environment state, teardown that stops
// vCPU threads before Node frees anything they touch, and the constants JS needs
// (capability numbers, memory-slot flags, epoll bits) taken from the system headers.
// Leaves out: the functions themselves (vm.cc, vcpu.cc, fdio.cc).
#include <linux/kvm.h>
#include <napi.h>
#include <sys/epoll.h>

#include "common.h"
#include "state.h"
#include "vcpu.h"

namespace latsim {

AddonState& State(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }

void AddonState::StopAllVcpus() {
  if (stopped) return;
  stopped = true;
  for (auto& kv : vcpus) kv.second->Terminate();
}

AddonState::~AddonState() {
  StopAllVcpus();
  vcpus.clear();
  // Node is tearing the environment down: let the mappings go with the process or
  // worker instead of releasing references here.
  for (auto& kv : slots) kv.second.buffer.SuppressDestruct();
}

static Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("KVM_API_VERSION", KVM_API_VERSION);

  Napi::Object cap = Napi::Object::New(env);
#define CAP(name) cap.Set(#name, KVM_CAP_##name);
  CAP(IRQCHIP) CAP(HLT) CAP(USER_MEMORY) CAP(SET_TSS_ADDR) CAP(EXT_CPUID) CAP(NR_VCPUS) CAP(MAX_VCPUS)
  CAP(NR_MEMSLOTS) CAP(SYNC_MMU) CAP(IOEVENTFD) CAP(IOEVENTFD_ANY_LENGTH) CAP(IRQFD) CAP(GET_TSC_KHZ)
  CAP(IMMEDIATE_EXIT) CAP(MANUAL_DIRTY_LOG_PROTECT2) CAP(READONLY_MEM) CAP(DIRTY_LOG_RING) CAP(XSAVE)
  CAP(VCPU_EVENTS) CAP(ADJUST_CLOCK) CAP(SET_IDENTITY_MAP_ADDR) CAP(DIRTY_LOG_RING_ACQ_REL)
#undef CAP
  c.Set("cap", cap);

  Napi::Object mem = Napi::Object::New(env);
  mem.Set("LOG_DIRTY_PAGES", KVM_MEM_LOG_DIRTY_PAGES);
  mem.Set("READONLY", KVM_MEM_READONLY);
  c.Set("mem", mem);

  Napi::Object manual = Napi::Object::New(env);
  manual.Set("ENABLE", KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);
  manual.Set("INITIALLY_SET", KVM_DIRTY_LOG_INITIALLY_SET);
  c.Set("dirtyLogManual", manual);

  Napi::Object ep = Napi::Object::New(env);
  ep.Set("IN", static_cast<uint32_t>(EPOLLIN));
  ep.Set("OUT", static_cast<uint32_t>(EPOLLOUT));
  ep.Set("ERR", static_cast<uint32_t>(EPOLLERR));
  ep.Set("HUP", static_cast<uint32_t>(EPOLLHUP));
  ep.Set("RDHUP", static_cast<uint32_t>(EPOLLRDHUP));
  ep.Set("ET", static_cast<uint32_t>(EPOLLET));
  c.Set("epoll", ep);

  Napi::Object exitReason = Napi::Object::New(env);
  exitReason.Set("IO", KVM_EXIT_IO);
  exitReason.Set("HLT", KVM_EXIT_HLT);
  exitReason.Set("MMIO", KVM_EXIT_MMIO);
  exitReason.Set("SHUTDOWN", KVM_EXIT_SHUTDOWN);
  exitReason.Set("FAIL_ENTRY", KVM_EXIT_FAIL_ENTRY);
  exitReason.Set("INTERNAL_ERROR", KVM_EXIT_INTERNAL_ERROR);
  exitReason.Set("SYSTEM_EVENT", KVM_EXIT_SYSTEM_EVENT);
  exitReason.Set("DIRTY_RING_FULL", KVM_EXIT_DIRTY_RING_FULL);
  c.Set("exitReason", exitReason);
  return c;
}

static void OnEnvCleanup(void* arg) { static_cast<AddonState*>(arg)->StopAllVcpus(); }

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  AddonState* st = new AddonState();
  env.SetInstanceData<AddonState>(st);
  // Registered after Node's own N-API hooks, so it runs before them (hooks run in
  // reverse order): vCPU threads stop before any finalizer unmaps guest memory.
  napi_add_env_cleanup_hook(env, OnEnvCleanup, st);
  InstallKickHandler();
  InitVm(env, exports);
  InitVcpu(env, exports);
  InitFdio(env, exports);
  exports.Set("constants", Constants(env));
  return exports;
}

}  // namespace latsim

static Napi::Object InitLatsimKvm(Napi::Env env, Napi::Object exports) { return latsim::Init(env, exports); }

NODE_API_MODULE(latsim_kvm, InitLatsimKvm)
