"""The cache never loses a valid entry: readers that race a writer delete nothing, links are
refused, and a cache can be shared by a group of users."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from lsnotes import cache

KEY = "race-entry"
CONFIG = {"model": "tiny"}


def _store(directory, value: float):
    cache.store_result(directory, KEY, CONFIG, {"w": torch.full((256, 256), value)}, [{"epoch": 1}])


def test_a_damaged_entry_is_deleted_only_by_the_lock_holder(tmp_path):
    directory = cache.entry_dir(KEY, tmp_path)
    _store(directory, 1.0)
    (directory / cache.WEIGHTS).write_bytes(b"half a file")       # what a reader can see mid-rewrite
    with warnings.catch_warnings():
        warnings.simplefilter("error")                            # no "discarding" warning either
        assert cache.load_result(directory, KEY, CONFIG) is None
    assert (directory / cache.MANIFEST).exists() and (directory / cache.WEIGHTS).exists()
    with cache.lock_for(KEY, tmp_path), pytest.warns(cache.CacheWarning, match="discarding"):
        assert cache.load_result(directory, KEY, CONFIG, discard=True) is None
    assert not (directory / cache.MANIFEST).exists()


def test_a_reader_racing_a_writer_never_deletes_the_entry(tmp_path):
    """One process rewrites an entry 40 times under the key's lock (as training does); another
    reads it as fast as it can without the lock (as ``zoo plan`` and the audit do)."""
    directory = cache.entry_dir(KEY, tmp_path)
    _store(directory, 0.0)
    writer = textwrap.dedent(f"""
        import torch
        from lsnotes import cache
        d = cache.entry_dir({KEY!r}, {str(tmp_path)!r})
        for i in range(1, 41):
            with cache.lock_for({KEY!r}, {str(tmp_path)!r}):
                cache.store_result(d, {KEY!r}, {CONFIG!r}, {{"w": torch.full((256, 256), float(i))}},
                                   [{{"epoch": 1}}])
    """)
    reader = textwrap.dedent(f"""
        import sys, warnings
        from lsnotes import cache
        d = cache.entry_dir({KEY!r}, {str(tmp_path)!r})
        seen = set()
        warnings.simplefilter("error")
        for _ in range(400):
            got = cache.load_result(d, {KEY!r}, {CONFIG!r})
            if got is not None:
                w = got[0]["w"]
                assert bool((w == w[0, 0]).all()), "a mixed entry was served"
                seen.add(float(w[0, 0]))
        print(len(seen))
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for code in (writer, reader)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    assert int(outs[1][0].strip()) >= 1                            # it read whole entries
    state, _ = cache.load_result(directory, KEY, CONFIG)            # and the last one survived
    assert float(state["w"][0, 0]) == 40.0


def test_an_entry_that_is_a_link_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "cache"
    root.mkdir()
    (root / KEY).symlink_to(outside)
    with pytest.raises(ValueError, match="symbolic link"):
        cache.entry_dir(KEY, root)


def test_a_file_that_is_a_link_is_neither_read_nor_written_through(tmp_path):
    directory = cache.entry_dir(KEY, tmp_path)
    _store(directory, 2.0)
    target = tmp_path / "elsewhere.pt"
    target.write_bytes((directory / cache.WEIGHTS).read_bytes())
    (directory / cache.WEIGHTS).unlink()
    (directory / cache.WEIGHTS).symlink_to(target)
    assert cache.load_result(directory, KEY, CONFIG) is None
    with pytest.raises(ValueError, match="symbolic link"):
        cache.atomic_write(directory / cache.WEIGHTS, b"x")
    assert target.read_bytes() != b"x"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_follow_the_umask_so_a_group_can_share_a_cache(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        cache.atomic_write(tmp_path / "f", b"data")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == mode
