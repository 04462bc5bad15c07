// A vCPU runner: one native thread per vCPU loops on KVM_RUN. Every exit it cannot
// resolve by re-entering (PIO, MMIO, HLT, SHUTDOWN, errors) becomes an exit record;
// the thread writes the vCPU's eventfd and blocks until JS completes the exit, so a
// JS main loop that does not answer stalls the guest for real. With the dirty ring
// (KVM_CAP_DIRTY_LOG_RING) the vCPU's ring is mapped from its fd, JS collects its
// entries through CollectDirtyRing, and a full ring (KVM_EXIT_DIRTY_RING_FULL) is
// one more exit JS answers once it has reaped.
// Leaves out: device routing (JS does it by address), interrupts, signals other
// than the private kick signal, and any pacing policy.
#pragma once

#include <linux/kvm.h>
#include <pthread.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace latsim {

enum class ExitKind { Io, Mmio, Hlt, DirtyRingFull, Shutdown, FailEntry, InternalError, SystemEvent, Error, Unknown };

struct ExitRecord {
  ExitKind kind = ExitKind::Unknown;
  uint64_t seq = 0;           // 1, 2, 3 ... per vCPU
  uint64_t monotonic_ns = 0;  // when KVM_RUN returned
  uint32_t raw_reason = 0;    // kvm_run.exit_reason
  bool terminal = false;      // the thread has ended; no answer is expected
  // Io
  bool io_in = false;
  uint16_t port = 0;
  uint8_t size = 0;
  uint32_t count = 0;
  // Mmio
  uint64_t mmio_addr = 0;
  uint32_t mmio_len = 0;
  bool mmio_write = false;
  // OUT / MMIO write payload (copied out of kvm_run)
  std::vector<uint8_t> data;
  // Terminal details
  std::string code;     // ETRIPLEFAULT, EFAILENTRY, EINTERNAL, ESYSTEMEVENT, errno name
  std::string message;  // one line
  uint64_t detail = 0;  // hardware entry failure reason / suberror / system event type / errno
};

enum class Phase { Created, Running, Exit, Paused, Ended };

const char* PhaseName(Phase p);

class Vcpu {
 public:
  Vcpu(int vm_fd, int id, int vcpu_fd, struct kvm_run* run, size_t run_size, int exit_fd);
  ~Vcpu();  // Terminate(), unmap kvm_run, close the vCPU fd and the exit eventfd

  int vm_fd() const { return vm_fd_; }
  int id() const { return id_; }
  int fd() const { return vcpu_fd_; }
  int exit_fd() const { return exit_fd_; }

  // Returns an error message, or "" on success.
  std::string Start();
  // Takes the unread exit record, if any (drains the exit eventfd).
  bool TakeRecord(ExitRecord* out);
  // Answers the pending exit; `in` is the data for a PIO IN or MMIO read.
  // Returns an error code ("" on success) and fills *msg.
  std::string Complete(const uint8_t* in, size_t in_len, std::string* msg);
  // Asks the thread to leave KVM_RUN and park. Waits up to timeout_ms.
  // Returns the phase afterwards: Paused, Exit (an exit awaits an answer first),
  // Ended, Created, or Running on timeout.
  Phase Pause(int timeout_ms);
  // Lets a paused (or pause-requested) vCPU run again.
  void Resume();
  // Stops the thread for good and joins it. Idempotent.
  void Terminate();
  Phase phase();
  // Maps the vCPU's dirty ring of `entries` entries (after KVM_ENABLE_CAP of the ring on
  // the VM). Returns an error message, or "" on success.
  std::string MapDirtyRing(uint32_t entries);
  // QEMU's kvm_dirty_ring_reap_one: takes the entries KVM pushed and nobody collected
  // yet, sets bit `offset` of bitmap (words 32-bit words) for those of `slot`, flags
  // them collected for KVM_RESET_DIRTY_RINGS. Returns how many, or -1 without a ring.
  int64_t CollectDirtyRing(uint32_t* bitmap, size_t words, uint32_t slot);
  // Entries pushed and not yet collected (a scan from the fetch index), or -1 without a ring.
  int64_t DirtyRingPending();

 private:
  void Loop();
  void PostLocked(ExitRecord&& rec);
  void Kick();
  bool DecodeExit(ExitRecord* rec);

  const int vm_fd_, id_, vcpu_fd_;
  struct kvm_run* const run_;
  const size_t run_size_;
  const int exit_fd_;

  std::mutex mu_;
  std::condition_variable cv_;
  Phase phase_ = Phase::Created;
  bool pause_requested_ = false;
  bool terminate_requested_ = false;
  bool answered_ = false;
  bool record_unread_ = false;
  bool thread_started_ = false;
  ExitRecord record_;  // the last exit posted
  uint64_t seq_ = 0;
  std::thread thread_;
  pthread_t tid_{};
  // The dirty ring: mapped entries, their count, QEMU's kvm_fetch_index (JS thread only).
  struct kvm_dirty_gfn* ring_ = nullptr;
  uint32_t ring_entries_ = 0;
  uint32_t fetch_ = 0;
};

// The signal used to kick a vCPU thread out of KVM_RUN (SIGRTMIN + 7). Installed
// once with an empty handler; only vCPU threads leave it unblocked.
int KickSignal();
void InstallKickHandler();

}  // namespace latsim
