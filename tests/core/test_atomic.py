"""Atomic writes, their temporaries, and what a kill leaves behind."""

import pytest

from aerialseg.core.atomic import atomic_dir, atomic_path, final_name, is_temporary, sweep_temporaries
from aerialseg.core.errors import DataError
from aerialseg.core.io import write_json


def test_temporaries_are_recognised_by_name_only():
    for name in (".epoch_010.k3j_x.tmp", ".probs.ab12.tmp.npy", ".state_0004.tmp.weights.h5", ".masks.old"):
        assert is_temporary(name), name
    for name in ("epoch_010", ".gitignore", ".dvc", "probs.tmp.npy", ".hidden", "tmp"):
        assert not is_temporary(name), name


def test_a_temporary_names_the_file_it_becomes(tmp_path):
    with atomic_path(tmp_path / "probs.npy") as tmp:
        assert is_temporary(tmp.name)
        assert final_name(tmp) == tmp_path / "probs.npy"
    assert final_name(tmp_path / "probs.npy") == tmp_path / "probs.npy"


def test_sweep_removes_debris_and_nothing_else(tmp_path):
    keep = [tmp_path / "a.png", tmp_path / ".gitignore", tmp_path / "sub" / "b.png"]
    debris = [tmp_path / ".a.x1.tmp.png", tmp_path / ".raw.old", tmp_path / "sub" / ".epoch_002.q.tmp"]
    for path in keep + debris:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".tmp", ".old"):
            path.mkdir()
            (path / "inside.png").write_bytes(b"x")
        else:
            path.write_bytes(b"x")
    assert sorted(sweep_temporaries(tmp_path, recursive=False)) == sorted(debris[:2])
    assert debris[2].exists()
    assert sweep_temporaries(tmp_path) == [debris[2]]
    assert all(path.exists() for path in keep) and not any(path.exists() for path in debris)


def test_failed_writes_leave_the_old_output_and_no_temporary(tmp_path):
    write_json(tmp_path / "m.json", {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "m.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "x").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
    assert (tmp_path / "m.json").read_text().strip() == '{\n  "v": 1\n}'


def test_an_unwritable_place_is_a_data_error_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="file"):
        write_json(blocker / "sub" / "m.json", {})


def test_a_killed_writer_not_yet_reaped_keeps_no_temporary(tmp_path):
    """SIGKILLed, a writer is a zombie until its parent reaps it (about 2 s for a batch): it writes
    nothing any more, so a rerun started at once sweeps its temporary; a live writer's stays."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from aerialseg.core.atomic import sweep_stale_temporaries, writer_is_gone

    writer = ("import sys\nfrom aerialseg.core.atomic import atomic_path\n"
              "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_bytes(b'part')\n    print(tmp, flush=True)\n"
              "    sys.stdin.readline()\n")
    process = subprocess.Popen([sys.executable, "-c", writer, str(tmp_path / "map.tif")], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        temporary = Path(process.stdout.readline().strip())
        assert temporary.is_file() and not writer_is_gone(temporary)  # alive and writing
        assert sweep_stale_temporaries(tmp_path) == [] and temporary.is_file()
        os.kill(process.pid, signal.SIGKILL)  # not reaped: a zombie
        deadline = time.time() + 10
        while Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.time() < deadline
            time.sleep(0.01)
        assert writer_is_gone(temporary)
        assert sweep_stale_temporaries(tmp_path) == [temporary] and not temporary.exists()
    finally:
        process.kill()
        process.wait()
