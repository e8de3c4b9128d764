#!/bin/sh
# Capture btrfs-progs output for the parser unit tests (run as root; uses its own loop devices).
set -e
OUT=$(realpath "$1")  # usage: sh capture.sh tests/unit/samples/btrfs
D=$(mktemp -d /tmp/osdt-capture-XXXXXX)
truncate -s 300M $D/a $D/b
A=$(losetup -f --show $D/a); B=$(losetup -f --show $D/b)
cleanup() { cd /; umount $D/m 2>/dev/null || true; btrfs device scan --forget $A $B 2>/dev/null || true; losetup -d $A $B; rm -rf $D; }
trap cleanup EXIT
mkfs.btrfs -q -L MOSRAID -d raid1 -m raid1 $A $B
mkdir $D/m; mount $A $D/m; cd $D/m
btrfs subvolume create vm1 >/dev/null; btrfs subvolume create vm1/nested >/dev/null
btrfs subvolume create "with space" >/dev/null
btrfs subvolume snapshot -r vm1 vm1-snap >/dev/null
btrfs quota enable .; btrfs quota rescan -w . >/dev/null; btrfs qgroup limit 10485760 vm1
dd if=/dev/urandom of=vm1/f bs=1M count=4 status=none; sync
LC_ALL=C btrfs subvolume list -p -u -q . | sed "s#$D#/MNT#g" > $OUT/subvolume-list.txt
LC_ALL=C btrfs subvolume list -r . > $OUT/subvolume-list-readonly.txt
LC_ALL=C btrfs subvolume show vm1-snap | sed "s#$D#/MNT#g" > $OUT/subvolume-show-snapshot.txt
LC_ALL=C btrfs qgroup show -re --raw . > $OUT/qgroup-show.txt
LC_ALL=C btrfs filesystem df -b . > $OUT/df-raid1.txt
LC_ALL=C btrfs filesystem usage -b . | sed "s#$A#/dev/loopA#g; s#$B#/dev/loopB#g" > $OUT/usage-raid1.txt
LC_ALL=C btrfs device stats -T . | sed "s#$A#/dev/loopA#g; s#$B#/dev/loopB#g" > $OUT/device-stats-table.txt
LC_ALL=C btrfs filesystem show --raw . | sed "s#$A#/dev/loopA#g; s#$B#/dev/loopB#g" > $OUT/show-raid1.txt
LC_ALL=C btrfs scrub status -R . > $OUT/scrub-status-never.txt
btrfs scrub start -B . >/dev/null
LC_ALL=C btrfs scrub status -R . > $OUT/scrub-status-finished.txt
LC_ALL=C btrfs balance status . > $OUT/balance-status-none.txt || true
# a running balance: slow it down with plenty of small extents and catch it with --bg + pause
for i in $(seq 1 200); do dd if=/dev/urandom of=f$i bs=64k count=8 status=none; done; sync
btrfs balance start --bg --full-balance . >/dev/null
btrfs balance pause . >/dev/null 2>&1 || true
LC_ALL=C btrfs balance status . > $OUT/balance-status-paused.txt || true
btrfs balance resume --bg . >/dev/null 2>&1 || true
LC_ALL=C btrfs balance status . > $OUT/balance-status-running.txt || true
btrfs balance cancel . >/dev/null 2>&1 || true
cd /; umount $D/m
btrfs --version > $OUT/version.txt
