#!/bin/busybox sh
# /init of the test VM (tests/vm/boot.sh): mounts the kernel's filesystems,
# runs the static netrec-capture, and powers off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo "vm: kernel $(uname -r)"
ip link set lo up
netrec-capture --version
netrec-capture --output /tmp/segments --duration 1s
echo "vm: netrec-capture exit $?"
poweroff -f
