#!/usr/bin/env bash
# Prepares what the nested-KVM test VM boots, cached under <checkout>/.vm/:
#   - qemu-system-x86 and busybox-static (apt-get install if missing);
#   - Debian's linux-image-6.1 amd64 kernel: fetched with apt-get download and
#     unpacked with dpkg-deb (never installed), keeping vmlinuz and the modules the
#     guest loads (kvm-amd, virtio-pci, 9p over virtio) plus their dependencies,
#     read from each module's own depends= field, decompressed, in load order;
#   - a small initramfs: static busybox, those modules and real/vm/init.sh.
# Prints nothing on success but the cache paths it wrote to .vm/paths.
# Leaves out: Intel (TCG emulates SVM only, so kvm-amd), other distributions.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${LATSIM_VM_CACHE:-$ROOT/.vm}
KDIR=$CACHE/kernel
INITRAMFS=$CACHE/initramfs.cpio.gz
# Modules the guest needs; their dependencies are added automatically.
ROOT_MODULES="kvm-amd virtio_pci 9pnet_virtio 9p"

log() { echo "latsim vm: $*" >&2; }
die() { echo "latsim vm: error: $*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else die "need root to run: $* (install it once, then rerun)"; fi
}

ensure_packages() {
  local missing=()
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=(busybox-static)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]}"
  as_root apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
    { as_root apt-get update >/dev/null && as_root apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
}

kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1[^ ]*-amd64$/ { print $2; exit }'
}

# Prints a module's dependencies (its .modinfo depends= field), comma-free.
module_depends() {
  local f=$1
  case $f in
    *.ko.xz) xz -dc "$f" ;;
    *.ko.zst) zstd -qdc "$f" ;;
    *.ko.gz) gzip -dc "$f" ;;
    *) cat "$f" ;;
  esac | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n1 | tr ',' ' '
}

prepare_kernel() {
  [ -f "$KDIR/ready" ] && return
  local pkg
  pkg=$(kernel_package)
  if [ -z "$pkg" ]; then
    as_root apt-get update >/dev/null || true
    pkg=$(kernel_package)
  fi
  [ -n "$pkg" ] || die "no linux-image-6.1 amd64 package in the apt sources"
  log "fetching $pkg (apt-get download, not installed)"
  local tmp=$CACHE/kernel.tmp
  rm -rf "$tmp" "$KDIR"
  mkdir -p "$tmp/deb" "$tmp/root"
  (cd "$tmp/deb" && apt-get download "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
  dpkg-deb -x "$tmp"/deb/*.deb "$tmp/root"
  local vmlinuz moddir
  vmlinuz=$(ls "$tmp"/root/boot/vmlinuz-* | head -n1)
  moddir=$(ls -d "$tmp"/root/lib/modules/* 2>/dev/null | head -n1)
  [ -f "$vmlinuz" ] && [ -d "$moddir" ] || die "unexpected layout in $pkg"
  mkdir -p "$KDIR/modules"
  cp "$vmlinuz" "$KDIR/vmlinuz"
  find "$moddir" -name '*.ko*' >"$tmp/index"

  local order=() seen=" "
  add_module() {
    local name=${1//-/_} file dep
    case $seen in *" $name "*) return ;; esac
    seen="$seen$name "
    file=$(grep -E "/(${name}|${name//_/-})\.ko(\.(xz|zst|gz))?$" "$tmp/index" | head -n1 || true)
    if [ -z "$file" ]; then
      log "module $name not in the package (built in?): skipped"
      return
    fi
    for dep in $(module_depends "$file"); do add_module "$dep"; done
    case $file in
      *.ko.xz) xz -dc "$file" >"$KDIR/modules/$name.ko" ;;
      *.ko.zst) zstd -qdc "$file" >"$KDIR/modules/$name.ko" ;;
      *.ko.gz) gzip -dc "$file" >"$KDIR/modules/$name.ko" ;;
      *) cp "$file" "$KDIR/modules/$name.ko" ;;
    esac
    order+=("$name")
  }
  local m
  for m in $ROOT_MODULES; do add_module "$m"; done
  printf '%s\n' "${order[@]}" >"$KDIR/modules/order"
  echo "$pkg" >"$KDIR/package"
  rm -rf "$tmp"
  touch "$KDIR/ready"
  log "kernel $pkg ready; modules: ${order[*]}"
}

prepare_initramfs() {
  local init=$ROOT/real/vm/init.sh
  if [ -f "$INITRAMFS" ] && [ "$INITRAMFS" -nt "$init" ] && [ "$INITRAMFS" -nt "$KDIR/ready" ]; then return; fi
  log "building initramfs"
  local st=$CACHE/initramfs.tmp
  rm -rf "$st"
  mkdir -p "$st"/{bb,modules,proc,sys,dev,tmp,usr,etc,mnt}
  cp /bin/busybox "$st/bb/busybox"
  local applet
  for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -s busybox "$st/bb/$applet"; done
  cp "$KDIR"/modules/* "$st/modules/"
  cp "$init" "$st/init"
  chmod 755 "$st/init"
  # The host's /usr is mounted at /usr in the guest (merged-/usr layout).
  ln -s usr/bin "$st/bin"
  ln -s usr/sbin "$st/sbin"
  ln -s usr/lib "$st/lib"
  ln -s usr/lib64 "$st/lib64"
  (cd "$st" && find . -mindepth 1 | /bin/busybox cpio -o -H newc -R 0:0 2>/dev/null) | gzip -1 >"$INITRAMFS.tmp"
  mv "$INITRAMFS.tmp" "$INITRAMFS"
  rm -rf "$st"
}

mkdir -p "$CACHE"
ensure_packages
prepare_kernel
prepare_initramfs
printf 'KERNEL=%s\nINITRAMFS=%s\n' "$KDIR/vmlinuz" "$INITRAMFS" >"$CACHE/paths"
