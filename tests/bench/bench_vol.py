"""Storage enumeration benchmark: vol.list_partitions and vol.inventory through osd vs lsblk + blkid.

    python tests/bench/bench_vol.py [--disks N] [--rounds R]      (root)

Sets up N loop disks (default 16), each with a GPT and two partitions holding an ext4
and a swap signature, then alternates, in the same run:

- osd: ``vol.list_partitions`` and ``vol.inventory`` through the real daemon over its
  Unix socket (one keep-alive client; the daemon probes with sysfs plus ``blkid -p``, no udev);
- reference: ``lsblk -J -b -O`` plus one ``blkid -p -o export`` per partition, the no-udev
  way to get the same fields (lsblk reports no FSTYPE/LABEL/UUID/PART* without udev).

Prints the median wall time of each and the ratio osd/reference; never passes or fails on
timing. The loop devices are this script's own and are detached at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.daemon import Daemon  # noqa: E402
from support.looplab import LoopLab, VOL_DAEMON, config_file, run  # noqa: E402


def reference(partitions: list[str]) -> float:
    start = time.perf_counter()
    json.loads(subprocess.run(["lsblk", "-J", "-b", "-O"], capture_output=True, check=True).stdout)
    for part in partitions:
        subprocess.run(["blkid", "-p", "-o", "export", part], capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disks", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_vol: needs root (loop devices)", file=sys.stderr)
        return 2
    with LoopLab("volbench") as lab:
        disks = [lab.disk(64) for _ in range(args.disks)]
        parts = []
        for disk in disks:
            run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", disk], input="label: gpt\n,40M,L\n,,S\n")
            run(["partx", "-u", disk])
            p1, p2 = lab.partitions(disk)
            run(["mkfs.ext4", "-q", "-L", "MOSbench", p1])
            run(["mkswap", "-q", p2])
            parts += [p1, p2]
        with Daemon(VOL_DAEMON, config_file(lab)) as daemon, daemon.client() as client:
            listed = client.call("vol.list_partitions")
            assert {p["path"] for p in listed} >= set(parts)
            assert all(p["fs_type"] in ("ext4", "swap") for p in listed if p["path"] in parts)
            samples: dict[str, list[float]] = {"list_partitions": [], "inventory": [], "reference": []}
            for _ in range(args.rounds):
                for method in ("list_partitions", "inventory"):
                    start = time.perf_counter()
                    client.call(f"vol.{method}")
                    samples[method].append(time.perf_counter() - start)
                samples["reference"].append(reference(parts))
    ref = statistics.median(samples["reference"])
    print(f"{args.disks} loop disks, {len(parts)} partitions, {args.rounds} rounds, medians:")
    print(f"  reference lsblk -J -b -O + blkid -p per partition: {ref * 1000:8.2f} ms")
    for method in ("list_partitions", "inventory"):
        med = statistics.median(samples[method])
        print(f"  osd vol.{method:<16}                          {med * 1000:8.2f} ms   ratio {med / ref:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
