"""VM lab smoke payload: check, inside the guest, the facts the VM tier exists for.

Writes $VMLAB_OUT/facts.json ({check: {"ok": bool, "detail": str}}) and exits 1 if any
check failed. Runs with the guest venv's python3 (cwd = the shared checkout).
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

OUT = Path(os.environ["VMLAB_OUT"])
facts: dict[str, dict] = {}


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def check(name: str):
    """Decorator: run the check now, recording ok or the exception as the detail."""
    def wrap(fn):
        try:
            facts[name] = {"ok": True, "detail": str(fn())}
        except Exception as exc:  # a failed check is data, not a crash
            facts[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        return fn
    return wrap


@check("systemd_pid1")
def _():
    comm = Path("/proc/1/comm").read_text().strip()
    assert comm == "systemd", comm
    return comm


@check("udevd_running")
def _():
    return sh("systemctl", "is-active", "systemd-udevd").strip()


@check("mdstat")
def _():
    sh("modprobe", "raid1")  # a stock distro loads md on demand
    return Path("/proc/mdstat").read_text().splitlines()[0]


@check("three_virtio_disks")
def _():
    serials = {d: Path(f"/sys/block/{d}/serial").read_text().strip() for d in ("vdb", "vdc", "vdd")}
    assert serials == {"vdb": "vmlab-disk1", "vdc": "vmlab-disk2", "vdd": "vmlab-disk3"}, serials
    links = sorted(p.name for p in Path("/dev/disk/by-id").glob("virtio-vmlab-disk*"))
    assert len(links) == 3, links  # udev made the by-id links
    return links


@check("vlan")
def _():
    sh("ip", "link", "add", "smk0", "type", "dummy")
    sh("ip", "link", "add", "link", "smk0", "name", "smk0.10", "type", "vlan", "id", "10")
    info = json.loads(sh("ip", "-d", "-j", "link", "show", "smk0.10"))[0]["linkinfo"]
    assert info["info_kind"] == "vlan" and info["info_data"]["id"] == 10, info
    sh("ip", "link", "del", "smk0")
    return info["info_data"]


@check("vfat_mount")
def _():
    sh("mkfs.vfat", "-n", "SMOKE", "/dev/vdd")
    Path("/mnt/smoke").mkdir(exist_ok=True)
    sh("mount", "-t", "vfat", "/dev/vdd", "/mnt/smoke")
    Path("/mnt/smoke/hello.txt").write_text("hi")
    sh("umount", "/mnt/smoke")
    sh("udevadm", "settle")
    props = dict(line.split("=", 1) for line in
                 sh("udevadm", "info", "--query=property", "/dev/vdd").splitlines())
    assert props.get("ID_FS_TYPE") == "vfat", props.get("ID_FS_TYPE")  # udev saw it
    return props["ID_FS_LABEL"]


@check("python_deps")
def _():
    import aiohttp, jsonschema, nacl, nftables, pyroute2, pyudev  # noqa: F401,E401
    return sys.executable


@check("project_on_path")
def _():
    import osd
    assert Path(osd.__file__).is_relative_to("/opt/osd/src"), osd.__file__
    wrapper = Path("/usr/local/bin/osd").read_text()
    return wrapper.splitlines()[0]


@check("osd_socket_health")
def _():
    path = Path("/run/osd/osd.sock")
    if not path.exists():
        return "no osd units installed"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(20)
        s.connect(str(path))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: osd\r\nConnection: close\r\n\r\n")
        reply = s.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head
    return body.decode()


@check("nic")
def _():
    links = json.loads(sh("ip", "-j", "link", "show"))
    names = [link["ifname"] for link in links if link.get("link_type") == "ether"]
    return names or "no NIC (run without nic=True)"


(OUT / "facts.json").write_text(json.dumps(facts, indent=1))
bad = [name for name, fact in facts.items() if not fact["ok"]]
print("smoke:", "all ok" if not bad else f"FAILED {bad}")
sys.exit(1 if bad else 0)
