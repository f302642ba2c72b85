#!/usr/bin/env bash
# Boots one of Debian's cloud kernels ($NETREC_VM_KERNEL: 5.10 from bullseye,
# 6.1 from bookworm (the default), 6.12 from bookworm-backports; all with
# kprobes, fentry and BTF, none with the sock_*_length tracepoints) under qemu
# with software emulation, with an initramfs that holds
# busybox-static, the static netrec-capture ($1), the static TCP workload ($2),
# optionally the static UDP workload ($4), and tests/vm/init.sh as /init, which
# runs the workloads under a capture once per --attach mode ($3, default
# auto,kprobe,fentry). The VM's serial console is
# printed on stdout; init powers it off. tests/capture/vm.rs drives this.
#
#   bash tests/vm/boot.sh target/static/x86_64-unknown-linux-gnu/release/netrec-capture \
#       target/tmp/tcp_workload kprobe target/tmp/udp_workload
#
# The kernel package is downloaded once into $NETREC_VM_CACHE (default
# ~/.cache/netrec-vm), never into the repository, through an apt configuration
# of its own there (sources list, lists and cache): the machine's apt sources
# and state are never touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
capture=${1:?usage: boot.sh STATIC_NETREC_CAPTURE STATIC_TCP_WORKLOAD [MODES]}
workload=${2:?usage: boot.sh STATIC_NETREC_CAPTURE STATIC_TCP_WORKLOAD [MODES]}
modes=${3:-auto,kprobe,fentry}
udp_workload=${4:-}
cache=${NETREC_VM_CACHE:-$HOME/.cache/netrec-vm}
kernel=${NETREC_VM_KERNEL:-6.1}
case $kernel in
    5.10) suite=bullseye ;;
    6.1) suite=bookworm ;;
    6.12) suite=bookworm-backports ;;
    *) echo "boot.sh: NETREC_VM_KERNEL=$kernel: expected 5.10, 6.1 or 6.12" >&2; exit 2 ;;
esac

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
command -v file >/dev/null || need+=(file)
[ -x /bin/busybox ] && file -L /bin/busybox | grep -q 'statically linked' || need+=(busybox-static)
if ((${#need[@]})); then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
for bin in "$capture" "$workload" ${udp_workload:+"$udp_workload"}; do
    if ! file -L "$bin" | grep -q 'statically linked\|static-pie linked'; then
        echo "boot.sh: $bin is not a static executable (the VM has no shared libraries; see README)" >&2
        exit 2
    fi
done

# The newest cloud kernel of that series the suite offers (older builds leave the mirror).
apt_dir=$cache/apt-$suite
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
    >"$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=/nonexistent
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -q)
pattern="^linux-image-${kernel//./\\.}\\.[0-9].*-cloud-amd64\$"
newest() { apt-cache "${apt_opts[@]}" search --names-only "$pattern" | cut -d' ' -f1 | grep -v -- '-unsigned$' | sort -V | tail -1; }
pkg=$(newest || true)
[ -n "$pkg" ] || { apt-get "${apt_opts[@]}" update >&2; pkg=$(newest); }
[ -n "$pkg" ] || { echo "boot.sh: no linux-image-$kernel cloud kernel in Debian's $suite" >&2; exit 2; }
vmlinuz=$(ls "$cache/$pkg"/boot/vmlinuz-* 2>/dev/null | head -1 || true)
if [ -z "$vmlinuz" ]; then
    # Not cached: fresh lists first, so the package is still on the mirror.
    apt-get "${apt_opts[@]}" update >&2
    pkg=$(newest)
    (cd "$cache" && apt-get "${apt_opts[@]}" download "$pkg" >&2 && dpkg-deb -x "$pkg"_*.deb "$pkg" && rm -f "$pkg"_*.deb)
    vmlinuz=$(ls "$cache/$pkg"/boot/vmlinuz-* | head -1)
fi
echo "boot.sh: booting $pkg" >&2

# 6.12 under this qemu's software emulation dies patching its own text (int3
# in sched_clock_cpu) with two CPUs; one CPU boots. la57 and cx16 off: with
# them 6.12's slab fast path (cmpxchg16b on 5-level pointers) double-faults.
smp=${NETREC_VM_SMP:-2}
[ "$kernel" = 6.12 ] && smp=${NETREC_VM_SMP:-1}

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,proc,sys,dev,tmp}
cp /bin/busybox "$root/bin/busybox"
cp "$capture" "$root/bin/netrec-capture"
cp "$workload" "$root/bin/tcp_workload"
[ -z "$udp_workload" ] || cp "$udp_workload" "$root/bin/udp_workload"
cp tests/vm/init.sh "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$root.initramfs.gz")

# No -enable-kvm: a KVM guest hangs on these machines (shared/MACHINE.md).
# -cpu max gives RDRAND and random.trust_cpu=on seeds the CRNG with it: without
# them getrandom(2) blocks for minutes in an emulated guest.
timeout 300 qemu-system-x86_64 -nographic -no-reboot -m 1024 -smp "$smp" -cpu max,la57=off,cx16=off \
    -kernel "$vmlinuz" -initrd "$root.initramfs.gz" \
    -append "console=ttyS0 panic=-1 quiet random.trust_cpu=on netrec.modes=$modes"
rm -f "$root.initramfs.gz"
