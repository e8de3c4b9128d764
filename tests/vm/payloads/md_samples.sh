#!/bin/sh
# VM lab payload: walk an MD array through its states and capture /proc/mdstat and
# `mdadm --detail` (plain and --export) at each one, into $VMLAB_OUT/md/ (see the README
# written there). Needs the three scratch disks /dev/vdb /dev/vdc /dev/vdd, small (64M)
# so that a resync slowed to 1 MB/s is still running when it is captured.
set -eu
out="$VMLAB_OUT/md"
mkdir -p "$out"
A=/dev/vdb B=/dev/vdc C=/dev/vdd
modprobe raid1; modprobe raid0; modprobe raid456

snap() {  # snap NAME [MD]: capture mdstat, and the array's detail when MD is given
    cat /proc/mdstat >"$out/$1.mdstat"
    if [ $# -gt 1 ]; then
        mdadm --detail "$2" >"$out/$1.detail"
        mdadm --detail --export "$2" >"$out/$1.export"
    fi
}
limit() { echo 1000 >/proc/sys/dev/raid/speed_limit_min; echo "$1" >/proc/sys/dev/raid/speed_limit_max; }
slow() { limit 1000; }  # KB/s: a 64M resync then takes about a minute
fast() { limit 200000; }
settle() { fast; mdadm --wait "$1" || true; udevadm settle; }

snap 00-no-arrays
# RAID-1 lifecycle
slow
mdadm --create /dev/md0 --run --name=osdtest --metadata=1.2 --level=1 --raid-devices=2 "$A" "$B"
sleep 2
snap raid1-01-resyncing /dev/md0
settle /dev/md0
snap raid1-02-clean /dev/md0
mdadm --add /dev/md0 "$C"
udevadm settle
snap raid1-03-spare-added /dev/md0
mdadm --examine "$A" >"$out/raid1-member.examine"
mdadm --detail --scan >"$out/raid1-detail-scan.txt"
slow
mdadm --fail /dev/md0 "$A"
sleep 2
snap raid1-04-member-failed-recovering /dev/md0
settle /dev/md0
snap raid1-05-recovered-faulty-kept /dev/md0
mdadm --remove /dev/md0 "$A"
mdadm --fail /dev/md0 "$B"
mdadm --remove /dev/md0 "$B"
udevadm settle
snap raid1-06-degraded /dev/md0
mdadm --stop /dev/md0
udevadm settle
snap raid1-07-stopped
mdadm --zero-superblock "$A" "$B" "$C"
udevadm settle

# RAID-0 and RAID-5, one state each (RAID-5 builds by recovering onto its last member)
mdadm --create /dev/md1 --run --metadata=1.2 --level=0 --raid-devices=2 "$A" "$B"
snap raid0-active /dev/md1
mdadm --stop /dev/md1
mdadm --zero-superblock "$A" "$B"
slow
mdadm --create /dev/md2 --run --metadata=1.2 --level=5 --raid-devices=3 "$A" "$B" "$C"
sleep 2
snap raid5-01-building /dev/md2
settle /dev/md2
snap raid5-02-clean /dev/md2
mdadm --stop /dev/md2
mdadm --zero-superblock "$A" "$B" "$C"
uname -r >"$out/kernel.txt"
mdadm --version 2>>"$out/kernel.txt"
ls "$out"
