#!/bb/sh
# /init of the latsim test VM's initramfs. Loads the KVM, virtio and 9p modules,
# mounts the host's /usr and /etc read-only and the checkout read-write over
# virtio-9p (the checkout at the same path as on the host), brings up loopback,
# runs the checkout's real/vm/guest.sh, records its exit status in
# <checkout>/.vm/status and on the console, and powers off.
# Leaves out: networking beyond loopback, a real root fs, udev.
export PATH=/bb

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp

for m in $(cat /modules/order); do
  insmod "/modules/$m.ko" 2>/dev/null || echo "latsim vm: insmod $m failed"
done

root=$(sed -n 's/.*latsim\.root=\([^ ]*\).*/\1/p' /proc/cmdline)
opts=trans=virtio,version=9p2000.L,msize=262144
ok=1
mount -t 9p -o "$opts,ro,cache=loose" usr /usr || ok=0
mount -t 9p -o "$opts,ro,cache=loose" etc /etc || ok=0
mkdir -p "$root"
mount -t 9p -o "$opts,cache=loose" work "$root" || ok=0

ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
echo "latsim vm: boot done in $(cut -d' ' -f1 /proc/uptime)s"

status=1
if [ "$ok" = 1 ] && [ -f "$root/real/vm/guest.sh" ]; then
  cd "$root"
  HOME=/tmp PATH=/usr/local/bin:/usr/bin:/bin /usr/bin/sh "$root/real/vm/guest.sh"
  status=$?
else
  echo "latsim vm: mounting the host's /usr, /etc or the checkout ($root) failed"
fi
[ -d "$root/.vm" ] && echo "$status" >"$root/.vm/status"
sync
echo "latsim-vm-exit-status: $status"
poweroff -f
