#!/usr/bin/env bash
# `npm run test:kvm`: runs the real-mode vitest suite (test/real/**) against KVM.
# Where /dev/kvm works it runs the suite directly. Otherwise it boots a nested-KVM
# test VM: QEMU with TCG (-accel tcg,thread=single -cpu max -smp 1) running
# Debian's 6.1 kernel, whose kvm-amd module gives the guest a /dev/kvm; the guest
# mounts the host's /usr and /etc read-only and this checkout read-write over
# virtio-9p and runs the host's own node, addon and vitest. QEMU exits 0 whatever
# happens, so the guest's status comes back in .vm/status; everything is bounded by
# timeouts. Arguments are passed to vitest.
# Environment:
#   LATSIM_KVM_TEST_MODE=auto|direct|vm  (default auto: direct if /dev/kvm opens)
#   LATSIM_VM_TIMEOUT_S=300              (whole VM run)
#   LATSIM_VM_MEM_MB=2048
# Leaves out: Intel nested (TCG emulates AMD SVM only), multi-CPU guests (MTTCG
# with more than one guest CPU hangs the nested kernel).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
CACHE=$ROOT/.vm
MODE=${LATSIM_KVM_TEST_MODE:-auto}
VM_TIMEOUT_S=${LATSIM_VM_TIMEOUT_S:-300}
VM_MEM_MB=${LATSIM_VM_MEM_MB:-2048}

log() { echo "latsim test:kvm: $*" >&2; }
die() { echo "latsim test:kvm: error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

build_host_artifacts() {
  local addon=real/kvm/build/Release/latsim_kvm.node
  if [ ! -f "$addon" ] || [ -n "$(find real/kvm/src real/kvm/binding.gyp -newer "$addon" 2>/dev/null | head -n1)" ]; then
    log "building the KVM addon"
    npm run -s build:kvm >"$CACHE/build-kvm.log" 2>&1 || { tail -n 20 "$CACHE/build-kvm.log" >&2; die "addon build failed (log: .vm/build-kvm.log)"; }
  fi
  node real/guest/build.mjs >/dev/null || die "guest payload build failed"
}

kvm_works() {
  [ -c /dev/kvm ] || return 1
  node -e "
    const k = require('./real/kvm/build/Release/latsim_kvm.node');
    const fd = k.openKvm(); process.exit(k.getApiVersion(fd) === 12 ? 0 : 1);" 2>/dev/null
}

mkdir -p "$CACHE"
build_host_artifacts

case $MODE in
  direct) ;;
  vm) ;;
  auto) if kvm_works; then MODE=direct; else MODE=vm; fi ;;
  *) die "LATSIM_KVM_TEST_MODE must be auto, direct or vm" ;;
esac

if [ "$MODE" = direct ]; then
  log "/dev/kvm is usable here: running the suite directly"
  exec timeout -k 10 "$VM_TIMEOUT_S" npx vitest run --config real/vm/vitest.real.config.ts "$@"
fi

t0=$(now_ms)
bash real/vm/prepare.sh
# shellcheck disable=SC1091
. "$CACHE/paths"
t1=$(now_ms)
log "prepared kernel and initramfs in $((t1 - t0)) ms; booting the test VM (timeout ${VM_TIMEOUT_S}s)"

printf '%s\n' "$*" >"$CACHE/vitest-args"
rm -f "$CACHE/status"
console=$CACHE/console.log
set +e
timeout -k 10 "$VM_TIMEOUT_S" qemu-system-x86_64 \
  -nodefaults -no-user-config -display none -no-reboot \
  -machine pc -accel tcg,thread=single -cpu max -smp 1 -m "$VM_MEM_MB" \
  -kernel "$KERNEL" -initrd "$INITRAMFS" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 latsim.root=$ROOT" \
  -chardev stdio,id=con,signal=on -serial chardev:con \
  -virtfs local,path=/usr,mount_tag=usr,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path=/etc,mount_tag=etc,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$ROOT,mount_tag=work,security_model=none,multidevs=remap" \
  </dev/null 2>&1 | tee "$console"
qemu_status=${PIPESTATUS[0]}
set -e
t2=$(now_ms)

if [ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ]; then
  die "the test VM did not finish within ${VM_TIMEOUT_S}s (console: .vm/console.log)"
fi
[ -f "$CACHE/status" ] || die "the test VM ended without reporting a status (QEMU status $qemu_status; console: .vm/console.log)"
status=$(cat "$CACHE/status")
boot_ms=$(awk '/latsim vm: boot done in/ { print $NF; exit }' "$console" 2>/dev/null || true)
log "test VM finished with status $status in $((t2 - t1)) ms${boot_ms:+ (guest boot ${boot_ms})}"
exit "$status"
