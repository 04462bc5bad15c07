// A vCPU runner: one native thread per vCPU loops on KVM_RUN. Every exit it cannot
// resolve by re-entering (PIO, MMIO, HLT, SHUTDOWN, errors) becomes an exit record;
// the thread writes the vCPU's eventfd and blocks until JS completes the exit, so a
// JS main loop that does not answer stalls the guest for real.
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

enum class ExitKind { Io, Mmio, Hlt, Shutdown, FailEntry, InternalError, SystemEvent, Error, Unknown };

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
};

// The signal used to kick a vCPU thread out of KVM_RUN (SIGRTMIN + 7). Installed
// once with an empty handler; only vCPU threads leave it unblocked.
int KickSignal();
void InstallKickHandler();

}  // namespace latsim
