#!/bin/sh
# Runs inside the nested-KVM test VM (started by init.sh, cwd = the checkout):
# checks that /dev/kvm exists, then runs the real-mode vitest suite with the
# arguments run-tests.sh left in .vm/vitest-args. Its exit status is the VM's.
# Leaves out: building anything (the host built the addon and the payload).
set -u
if [ ! -c /dev/kvm ]; then
  echo "latsim vm: /dev/kvm missing in the test VM (kvm-amd did not load; does QEMU offer SVM with -cpu max?)"
  dmesg | grep -iE 'kvm|svm' | tail -n 5
  exit 1
fi
dmesg | grep -m1 -i 'kvm:' || true
# CI=true: plain line-by-line reporter output on the serial console.
export CI=true
args=""
[ -f .vm/vitest-args ] && args=$(cat .vm/vitest-args)
echo "latsim vm: starting vitest at $(cut -d" " -f1 /proc/uptime)s"
# shellcheck disable=SC2086
exec /usr/bin/node node_modules/vitest/vitest.mjs run --config real/vm/vitest.real.config.ts $args
