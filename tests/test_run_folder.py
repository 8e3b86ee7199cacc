"""The run folder's lock and log: one writer at a time, and a log cut back to the checkpoint on resume."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from condgan import run_folder
from condgan.run_folder import RunLock, RunLocked


def _holder(path):
    """A child process holding the lock on `path` until it is killed."""
    code = ("import sys, time; from condgan.run_folder import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    proc = _holder(tmp_path / "run")
    try:
        with pytest.raises(RunLocked, match=f"in use by process {proc.pid}"):
            RunLock(tmp_path / "run").acquire()
    finally:
        proc.kill()
        proc.wait()
    # the kernel dropped the dead holder's lock: the folder is free again, the stale PID notwithstanding
    with RunLock(tmp_path / "run") as lock:
        assert json.loads(lock.path.read_text())["pid"] != proc.pid


def test_stale_lock_file_from_a_dead_process_is_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / run_folder.LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": "x"}))
    with RunLock(run):
        pass


def test_a_folder_made_only_for_the_lock_is_removed_again(tmp_path):
    with RunLock(tmp_path / "new"):
        assert (tmp_path / "new").is_dir()
    assert not (tmp_path / "new").exists()
    with RunLock(tmp_path / "kept"):
        (tmp_path / "kept" / "config.json").write_text("{}")
    assert (tmp_path / "kept" / "config.json").exists()


def test_truncate_metrics_keeps_lines_up_to_the_checkpoint(tmp_path):
    lines = [{"step": s, "loss": s / 10} for s in (1, 2, 3, 4, 5)] + [{"step": 4, "val_l1": 0.5}]
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"step": 6, "lo'
    (tmp_path / run_folder.METRICS).write_text(text)
    assert run_folder.truncate_metrics(tmp_path, 4) == 2  # step 5 and the torn line
    kept = [json.loads(x) for x in (tmp_path / run_folder.METRICS).read_text().splitlines()]
    assert kept == [line for line in lines if line["step"] <= 4]
    mtime = (tmp_path / run_folder.METRICS).stat().st_mtime_ns
    time.sleep(0.01)
    assert run_folder.truncate_metrics(tmp_path, 4) == 0
    assert (tmp_path / run_folder.METRICS).stat().st_mtime_ns == mtime  # untouched when nothing changes
