#!/bin/busybox sh
# /init of the test VM (tests/vm/boot.sh). Runs the workload under the static
# netrec-capture once per --attach mode named on the kernel command line
# (netrec.modes=auto,kprobe,fentry; MODE-INTERVAL adds --data INTERVAL, as in
# kprobe-1s; `uprobe` records the workload's main() instead) and prints
# everything on the console,
# each line tagged so the host can pick it out of kernel messages:
#   vm-run MODE | vm-workload JSON | vm-udp JSON | vm-exit MODE STATUS | vm-stderr LINE
#   vm-segment MODE NAME SHA256 | vm-b64 LINE (the segment, base64)
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
ip link set lo up
hostname netrec-vm
echo "vm-kernel $(uname -r)"

modes=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^netrec\.modes=//p' | tr ',' ' ')
for mode in ${modes:-auto}; do
    echo "vm-run $mode"
    if [ "$mode" = uprobe ]; then
        # An application probe on the workload itself (needs BPF cookies).
        set -- --uprobe /bin/tcp_workload:main
    else
        attach=${mode%%-*}
        data=calls
        [ "$attach" != "$mode" ] && data=${mode#*-}
        set -- --attach "$attach" --data "$data"
    fi
    netrec-capture --output "/tmp/$mode" "$@" 2>"/tmp/$mode.err" &
    cap=$!
    # Ready once it says where it records; give up if it exits or stalls.
    i=0
    until grep -q "recording to" "/tmp/$mode.err"; do
        kill -0 "$cap" 2>/dev/null || break
        i=$((i + 1))
        [ "$i" -gt 600 ] && break
        sleep 0.1
    done
    if kill -0 "$cap" 2>/dev/null; then
        echo "vm-workload $(tcp_workload pair)"
        [ -x /bin/udp_workload ] && echo "vm-udp $(udp_workload)"
        sleep 1 # let the last events reach the ring buffer reader
        kill -INT "$cap"
    fi
    wait "$cap"
    echo "vm-exit $mode $?"
    sed 's/^/vm-stderr /' "/tmp/$mode.err"
    for f in "/tmp/$mode"/*.parquet; do
        [ -f "$f" ] || continue
        echo "vm-segment $mode $(basename "$f") $(sha256sum "$f" | cut -d' ' -f1)"
        base64 "$f" | sed 's/^/vm-b64 /'
    done
done
echo "vm-done"
poweroff -f
