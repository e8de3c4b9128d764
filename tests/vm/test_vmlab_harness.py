"""The VM lab harness's own bookkeeping, without booting anything (fast, no root)."""
import shutil
import subprocess
import threading
import time

import vmlab
import vmlab_image


def test_recipe_hash_follows_the_recipe(tmp_path, monkeypatch):
    for name in [*vmlab_image.APT_LISTS, "pyproject.toml"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(vmlab_image.REPO / name, tmp_path / name)
    monkeypatch.setattr(vmlab_image, "REPO", tmp_path)
    before = vmlab_image.recipe_hash()
    assert vmlab_image.recipe_hash() == before
    with open(tmp_path / "pyproject.toml", "a") as f:
        f.write("\n# a comment outside [project].dependencies\n")
    assert vmlab_image.recipe_hash() == before
    with open(tmp_path / vmlab_image.APT_LISTS[0], "a") as f:
        f.write("hello\n")
    assert vmlab_image.recipe_hash() != before


def test_read_list_drops_comments(tmp_path):
    (tmp_path / "l.txt").write_text("# head\na\n\nb  # why\n")
    assert vmlab_image.read_list(tmp_path / "l.txt") == ["a", "b"]


def test_ledger_undo_kills_and_removes_what_it_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(vmlab, "LEDGERS", tmp_path / "ledgers")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = subprocess.Popen(["sleep", "60"])
    ledger = vmlab.Ledger("t1")
    ledger.note(run_dir=str(run_dir), qemu=vmlab._identity(proc.pid))
    assert not ledger.orphaned()  # this process owns it
    ledger.undo()
    assert proc.wait(timeout=5) == -9
    assert not run_dir.exists() and not ledger.path.exists()
    ledger.undo()  # idempotent


def test_gc_undoes_only_orphans(tmp_path, monkeypatch):
    monkeypatch.setattr(vmlab, "LEDGERS", tmp_path / "ledgers")
    mine = vmlab.Ledger("live")
    dead = vmlab.Ledger("dead")
    dead.note(owner=[mine.items["owner"][0], -1])  # same pid, other start time: not us
    assert vmlab.gc() == 1
    assert mine.path.exists() and not dead.path.exists()
    mine.undo()


def test_a_reused_pid_is_not_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(vmlab, "LEDGERS", tmp_path / "ledgers")
    proc = subprocess.Popen(["sleep", "60"])
    ledger = vmlab.Ledger("t2")
    ledger.note(qemu=[proc.pid, -1])  # recorded identity does not match the live process
    ledger.undo()
    assert proc.poll() is None
    proc.kill()
    proc.wait()


def test_concurrent_builders_build_once_and_stale_temps_go(tmp_path, monkeypatch):
    monkeypatch.setattr(vmlab_image, "CACHE", tmp_path)
    monkeypatch.setattr(vmlab_image, "recipe_hash", lambda: "k")
    stale = tmp_path / ".tmp-k-left-by-a-killed-builder"
    stale.mkdir()
    builds = []

    def fake_build_into(tmp, key, log):
        builds.append(key)
        assert not stale.exists()  # removed under the lock before building
        time.sleep(0.3)  # the other builder waits on the lock meanwhile
        (tmp / "manifest.json").write_text('{"tool": "osd-vmlab", "recipe": "k"}')
    monkeypatch.setattr(vmlab_image, "_build_into", fake_build_into)
    threads = [threading.Thread(target=vmlab_image.build_image, kwargs={"log": lambda m: None})
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == ["k"]
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["k"]
