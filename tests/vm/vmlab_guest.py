"""Guest side of the VM lab: set up the project, start its units, run the payload, power off.

The host copies this file into the job share for every run (so changing it never rebuilds the
image); the image's vmlab-boot hook runs it with Debian's python3 as
`python3 /run/vmlab/guest.py /run/vmlab`. It reads job.json from that directory and writes
everything back into it: stdout, stderr, units.json, out/ (the payload's $VMLAB_OUT) and,
last, result.json - whose presence tells the host that the payload finished.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

SRC = Path("/opt/osd/src")  # the checkout, shared read-only by the host
VENV = Path("/opt/osd/venv")
SITE = VENV / "lib/python3.11/site-packages"


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def sh(*argv: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def install_project() -> None:
    """Make the shared checkout importable in VENV with its scripts on PATH (no copy, no pip).

    A .pth file plus a minimal dist-info is what an editable install amounts to; it costs
    nothing, where `pip install --no-deps` takes many seconds under TCG.
    """
    SRC.mkdir(parents=True, exist_ok=True)
    sh("mount", "-t", "9p", "-o", "trans=virtio,version=9p2000.L,msize=262144,ro",
       "osdsrc", str(SRC), check=True)
    with open(SRC / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    (SITE / "osd-src.pth").write_text(f"{SRC}\n")
    dist = SITE / f"{project['name']}-{project['version']}.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                   f"Version: {project['version']}\n")
    scripts = project.get("scripts", {})
    (dist / "entry_points.txt").write_text(
        "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items()))
    for name, target in scripts.items():
        module, func = target.split(":")
        # Both where pip would put it (the venv) and on every PATH (units may use either).
        for wrapper in (VENV / "bin" / name, Path("/usr/local/bin") / name):
            wrapper.write_text(f"#!{VENV}/bin/python3\nimport sys\n"
                               f"from {module} import {func}\nsys.exit({func}())\n")
            wrapper.chmod(0o755)


def start_units(unit_dir: Path) -> dict:
    """Install osd.service/osd.socket from unit_dir, start them, and report what systemd saw.

    `systemctl start` of a Type=notify service returns only after READY=1, so a zero exit
    here proves the notification; the socket's mode and group and the StateDirectory are
    read back from the running system.
    """
    units = sorted(p.name for p in unit_dir.glob("osd.*") if p.suffix in (".service", ".socket"))
    facts: dict = {"units": units}
    if not units:
        return facts
    for name in units:
        shutil.copy(unit_dir / name, Path("/etc/systemd/system") / name)
    if sh("getent", "group", "osd").returncode:
        sh("groupadd", "--system", "osd")
    sh("systemctl", "daemon-reload")
    start = sh("systemctl", "start", *units)
    facts["start"] = {"rc": start.returncode, "stderr": start.stderr}
    for name in units:
        show = sh("systemctl", "show", name, "--no-pager", "-p",
                  "ActiveState,SubState,Result,Type,MainPID,StateDirectory,Listen,NRestarts")
        facts[name] = dict(line.split("=", 1) for line in show.stdout.splitlines() if "=" in line)
    for listen in facts.get("osd.socket", {}).get("Listen", "").split():
        if listen.startswith("/"):
            st = sh("stat", "-c", "%a %U %G %F", listen)
            facts["socket_stat"] = {"path": listen, "stat": st.stdout.strip()}
    state = facts.get("osd.service", {}).get("StateDirectory", "")
    facts["state_dirs"] = {d: sh("stat", "-c", "%a %U %G", f"/var/lib/{d}").stdout.strip()
                           for d in state.split()}
    if start.returncode:
        facts["journal"] = sh("journalctl", "-b", "--no-pager", "-u", "osd.*").stdout[-8000:]
    return facts


def run_payload(job: dict, share: Path) -> int:
    env = {"PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": "/root", "LANG": "C.UTF-8", "VMLAB_OUT": str(share / "out"),
           "PYTHONDONTWRITEBYTECODE": "1", **job.get("env", {})}
    cwd = SRC if SRC.is_mount() else "/"
    if job.get("interactive"):  # debug shell: the payload owns the serial console
        with open("/dev/ttyS0", "r+b", buffering=0) as tty:
            return subprocess.run(["setsid", "-c", "-w", *job["argv"]], stdin=tty, stdout=tty,
                                   stderr=tty, env=env, cwd=cwd).returncode
    with open(share / "stdout", "wb") as out, open(share / "stderr", "wb") as err:
        try:
            return subprocess.run(job["argv"], stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=err, env=env, cwd=cwd,
                                  timeout=job.get("timeout")).returncode
        except subprocess.TimeoutExpired:
            err.write(b"\nvmlab: payload timed out in the guest\n")
            return 124
        except OSError as exc:  # payload missing or not executable
            err.write(f"\nvmlab: cannot run payload: {exc}\n".encode())
            return 127


def main(share: Path) -> None:
    result: dict = {"boot_s": uptime()}
    try:
        job = json.loads((share / "job.json").read_text())
        (share / "out").mkdir(exist_ok=True)
        t = uptime()
        if job.get("project"):
            install_project()
            result["project_s"] = round(uptime() - t, 2)
        t = uptime()
        sh("udevadm", "settle", "--timeout=60")
        result["settle_s"] = round(uptime() - t, 2)
        if job.get("units"):
            t = uptime()
            facts = start_units(Path(job["units"]))
            facts["seconds"] = round(uptime() - t, 2)
            (share / "units.json").write_text(json.dumps(facts, indent=1))
        result["payload_start_s"] = uptime()
        result["rc"] = run_payload(job, share)
        result["payload_s"] = round(uptime() - result["payload_start_s"], 2)
        if result["rc"] and not job.get("interactive"):
            (share / "journal.txt").write_text(sh("journalctl", "-b", "--no-pager").stdout)
    except Exception as exc:  # report the runner's own failure instead of timing out
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        tmp = share / "result.json.tmp"
        tmp.write_text(json.dumps(result))
        tmp.rename(share / "result.json")
        os.sync()
        subprocess.run(["systemctl", "poweroff", "-ff"])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
