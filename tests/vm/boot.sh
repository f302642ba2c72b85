#!/usr/bin/env bash
# Boots Debian's 6.1 cloud kernel (kprobes, fentry and BTF on; no sock_*_length
# tracepoints) under qemu with software emulation, with an initramfs that holds
# busybox-static, the static netrec-capture ($1), the static TCP workload ($2)
# and tests/vm/init.sh as /init, which runs the workload under a capture once
# per --attach mode ($3, default auto,kprobe,fentry). The VM's serial console is
# printed on stdout; init powers it off. tests/capture/vm.rs drives this.
#
#   bash tests/vm/boot.sh target/static/x86_64-unknown-linux-gnu/release/netrec-capture \
#       target/tmp/tcp_workload kprobe
#
# The kernel package is downloaded once into $NETREC_VM_CACHE (default
# ~/.cache/netrec-vm), never into the repository.
set -euo pipefail
cd "$(dirname "$0")/../.."
capture=${1:?usage: boot.sh STATIC_NETREC_CAPTURE STATIC_TCP_WORKLOAD [MODES]}
workload=${2:?usage: boot.sh STATIC_NETREC_CAPTURE STATIC_TCP_WORKLOAD [MODES]}
modes=${3:-auto,kprobe,fentry}
cache=${NETREC_VM_CACHE:-$HOME/.cache/netrec-vm}

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
command -v file >/dev/null || need+=(file)
[ -x /bin/busybox ] && file -L /bin/busybox | grep -q 'statically linked' || need+=(busybox-static)
if ((${#need[@]})); then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
for bin in "$capture" "$workload"; do
    if ! file -L "$bin" | grep -q 'statically linked\|static-pie linked'; then
        echo "boot.sh: $bin is not a static executable (the VM has no shared libraries; see README)" >&2
        exit 2
    fi
done

# The newest 6.1 cloud kernel the mirror offers (older builds leave the mirror).
mkdir -p "$cache"
pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' | cut -d' ' -f1 | sort -V | tail -1)
[ -n "$pkg" ] || { apt-get update -q; pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' | cut -d' ' -f1 | sort -V | tail -1); }
vmlinuz=$(ls "$cache/$pkg"/boot/vmlinuz-* 2>/dev/null | head -1 || true)
if [ -z "$vmlinuz" ]; then
    (cd "$cache" && apt-get download "$pkg" 2>/dev/null && dpkg-deb -x "$pkg"_*.deb "$pkg" && rm -f "$pkg"_*.deb)
    vmlinuz=$(ls "$cache/$pkg"/boot/vmlinuz-* | head -1)
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,proc,sys,dev,tmp}
cp /bin/busybox "$root/bin/busybox"
cp "$capture" "$root/bin/netrec-capture"
cp "$workload" "$root/bin/tcp_workload"
cp tests/vm/init.sh "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$root.initramfs.gz")

# No -enable-kvm: a KVM guest hangs on these machines (shared/MACHINE.md).
# -cpu max gives RDRAND and random.trust_cpu=on seeds the CRNG with it: without
# them getrandom(2) blocks for minutes in an emulated guest.
timeout 300 qemu-system-x86_64 -nographic -no-reboot -m 1024 -smp 2 -cpu max \
    -kernel "$vmlinuz" -initrd "$root.initramfs.gz" \
    -append "console=ttyS0 panic=-1 quiet random.trust_cpu=on netrec.modes=$modes"
rm -f "$root.initramfs.gz"
