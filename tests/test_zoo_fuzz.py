"""Property tests of ``lsnotes zoo plan`` (issue 20, item 5): whatever a user types for
--profile, --paper, --chapter and --seed, the command exits 0 with a plan, or exits 2 with one
line saying what is wrong; never a traceback. ``make fuzz`` explores many more inputs."""

from __future__ import annotations

import contextlib
import io

import pytest
from fuzzing import examples
from hypothesis import given, settings, strategies as st

from lsnotes import cli
from lsnotes.zoo import book

# arbitrary text, but also the valid values and near misses, so that both exits are explored
def option(valid):
    near = [v.upper() for v in valid] + [v + " " for v in valid] + ["", "-", "--help"]
    return st.one_of(st.sampled_from(list(valid)), st.sampled_from(near), st.text(max_size=12))


profiles = option(("quick", "full"))
papers = st.one_of(st.none(), option(tuple(book.PAPERS)))
chapters = st.one_of(st.none(), option(tuple(book.CHAPTERS)))
seeds = st.one_of(st.integers(-3, 2**31).map(str), st.sampled_from(["1e3", "0x1", "nan", ""]),
                  st.text(max_size=6))


@pytest.fixture(scope="module")
def empty_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo-cache")


def run_plan(argv):
    """``lsnotes`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:   # argparse's own errors
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=examples(15), deadline=None)
@given(profile=profiles, paper=papers, chapter=chapters, seed=seeds)
def test_zoo_plan_exits_0_or_2_with_one_line(profile, paper, chapter, seed, empty_cache):
    # --name=value: a value that starts with "-" stays a value
    argv = ["zoo", "plan", f"--profile={profile}", f"--seed={seed}",
            f"--cache-dir={empty_cache}"]
    argv += [f"--paper={paper}"] if paper is not None else []
    argv += [f"--chapter={chapter}"] if chapter is not None else []
    code, out, err = run_plan(argv)   # any other exception fails the test: a traceback
    assert code in (0, 2), (code, err)
    assert "Traceback" not in out + err
    if code == 0:
        assert out.strip() and not err.strip()
    else:
        errors = [line for line in err.splitlines() if "error:" in line]
        assert len(errors) == 1 and err.rstrip("\n").splitlines()[-1] == errors[0], err


def test_the_fuzz_reaches_both_exits(empty_cache):
    """The property above compares two outcomes that both happen."""
    assert run_plan(["zoo", "plan", "--profile=quick", f"--cache-dir={empty_cache}"])[0] == 0
    code, _, err = run_plan(["zoo", "plan", "--profile=quick", "--paper=nobody",
                             f"--cache-dir={empty_cache}"])
    assert code == 2 and err.count("\n") == 1 and "paper" in err
