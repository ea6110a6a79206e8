"""ERFResult arithmetic and files: round trips, NaN handling, atomic writes."""

import json
import os
import stat
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from erf.io import store
from erf.io.store import (
    CorruptJob,
    check_files,
    clean_stale_temps,
    file_record,
    folder_lock,
    load_result,
    load_results,
    read_job_metrics,
    read_json,
    save_result,
    save_results,
    write_json,
)
from erf.result import ERFResult


def _result(per_sample, reduce="abs"):
    stack = np.asarray(per_sample, dtype=np.float64)
    return ERFResult(
        total=stack.sum(0),
        total_sq=(stack**2).sum(0),
        n_samples=len(stack),
        input_shape=(1, *stack.shape[1:]),
        target=None,
        target_shape=(1, *stack.shape[1:]),
        position=(1, 1),
        channel=None,
        reduce=reduce,
        meta={"seed": 3},
    )


def test_map_is_the_mean_and_stderr_the_standard_error():
    samples = np.random.default_rng(0).normal(size=(6, 3, 3))
    r = _result(samples)
    np.testing.assert_allclose(r.map, samples.mean(0))
    np.testing.assert_allclose(r.stderr, samples.std(0, ddof=1) / np.sqrt(6))


def test_clamp_after_mean_clamps_after_averaging():
    r = _result([[[1.0, -3.0]], [[-2.0, 1.0]]], reduce="clamp_after_mean")
    np.testing.assert_array_equal(r.map, [[0.0, 0.0]])
    r = _result([[[3.0, -3.0]], [[-2.0, 1.0]]], reduce="clamp_after_mean")
    np.testing.assert_array_equal(r.map, [[0.5, 0.0]])


def test_a_result_saved_as_signed_clamp_reads_as_clamp_after_mean():
    # Files written before the rename say "signed_clamp"; their map must stay clamped.
    r = _result([[[3.0, -3.0]], [[-2.0, 1.0]]], reduce="signed_clamp")
    np.testing.assert_array_equal(r.map, [[0.5, 0.0]])


def test_merging_two_shards_equals_one_run_over_all_samples():
    samples = np.random.default_rng(1).normal(size=(7, 4, 4))
    merged = _result(samples[:3]).merged(_result(samples[3:]))
    whole = _result(samples)
    np.testing.assert_allclose(merged.map, whole.map)
    np.testing.assert_allclose(merged.stderr, whole.stderr)
    assert merged.n_samples == 7


def test_merging_results_of_different_probes_is_refused():
    a, b = _result(np.ones((2, 3, 3))), _result(np.ones((2, 3, 3)), reduce="square")
    with pytest.raises(ValueError):
        a.merged(b)


def test_save_and_load_round_trip(tmp_path):
    r = _result(np.random.default_rng(2).random((4, 5, 6)))
    save_result(r, tmp_path / "erf.npz")
    back = load_result(tmp_path / "erf.npz")
    np.testing.assert_array_equal(back.total, r.total)
    np.testing.assert_array_equal(back.total_sq, r.total_sq)
    assert (back.n_samples, back.position, back.reduce, back.meta) == (
        4,
        (1, 1),
        "abs",
        {"seed": 3},
    )
    assert back.input_shape == (1, 5, 6)


def test_write_json_writes_nan_as_null_and_leaves_no_temp_files(tmp_path):
    write_json({"a": float("nan"), "b": np.float32(1.5), "c": (1, 2)}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": None, "b": 1.5, "c": [1, 2]}
    assert read_json(tmp_path / "m.json")["b"] == 1.5
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_a_failed_write_keeps_the_previous_file_intact(tmp_path):
    write_json({"done": True}, tmp_path / "m.json")
    with pytest.raises(TypeError):
        write_json({"bad": object()}, tmp_path / "m.json")
    assert read_json(tmp_path / "m.json") == {"done": True}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_check_files_names_the_first_file_that_is_not_as_recorded(tmp_path):
    from erf.io.store import CorruptJob, check_files, file_record, read_job_metrics

    (tmp_path / "a.npz").write_bytes(b"abc")
    (tmp_path / "b.png").write_bytes(b"xyz")
    record = file_record(tmp_path, ["a.npz", "b.png"])
    write_json({"files": record}, tmp_path / "metrics.json")
    assert check_files(tmp_path, record) is None
    assert read_job_metrics(tmp_path / "metrics.json")["files"] == record
    (tmp_path / "b.png").write_bytes(b"xyZ")  # same size, other bytes
    assert "b.png does not match its sha256" in check_files(tmp_path, record)
    (tmp_path / "a.npz").write_bytes(b"ab")
    assert "a.npz is 2 bytes, metrics.json recorded 3" in check_files(tmp_path, record)
    with pytest.raises(CorruptJob, match="a.npz is 2 bytes"):
        read_job_metrics(tmp_path / "metrics.json")


def test_an_unreadable_npz_is_a_one_line_corrupt_job_error(tmp_path):
    from erf.io.store import CorruptJob

    (tmp_path / "erf.npz").write_bytes(b"garbage")
    with pytest.raises(CorruptJob, match=r"erf.npz is unreadable \(ValueError\)"):
        load_result(tmp_path / "erf.npz")
    with pytest.raises(FileNotFoundError):
        load_result(tmp_path / "missing.npz")


def _grouped(per_sample, k):
    """A result whose groups hold sample i in group i % k, and one all-zero sample."""
    stack = np.asarray(per_sample, dtype=np.float64)
    r = _result(stack)
    r.groups = np.stack([stack[g::k].sum(0) for g in range(k)])
    r.group_n = np.array([len(stack[g::k]) for g in range(k)])
    r.n_dead = int((stack == 0).reshape(len(stack), -1).all(1).sum())
    return r


def test_groups_and_dead_counts_round_trip_and_merge(tmp_path):
    samples = np.random.default_rng(1).random((7, 3, 4))
    samples[5] = 0.0
    r = _grouped(samples, 3)
    save_result(r, tmp_path / "erf.npz")
    back = load_result(tmp_path / "erf.npz")
    np.testing.assert_array_equal(back.groups, r.groups)
    np.testing.assert_array_equal(back.group_n, [3, 2, 2])
    assert back.n_dead == 1
    a, b = _grouped(samples[:3], 3), _grouped(samples[3:], 3)  # 3 % 3 == 0: no rotation
    merged = a.merged(b)
    np.testing.assert_allclose(merged.groups, r.groups, rtol=1e-15)
    np.testing.assert_array_equal(merged.group_n, r.group_n)
    assert merged.n_dead == 1
    assert a.merged(_result(samples[3:])).groups is None  # one part without groups: none
    with pytest.raises(ValueError, match="bootstrap_groups"):
        a.merged(_grouped(samples[3:], 2))


def test_files_written_before_groups_existed_load_with_groups_none(tmp_path):
    """The old format: map, stderr, total, total_sq and a header without n_dead."""
    r = _result(np.ones((2, 3, 3)))
    header = {
        "n_samples": 2, "target": None, "position": [1, 1], "channel": None, "reduce": "abs",
        "n_nonfinite": 0, "input_shape": [1, 3, 3], "target_shape": [1, 3, 3], "meta": {},
    }  # fmt: skip
    arrays = dict(map=r.map, stderr=r.stderr, total=r.total, total_sq=r.total_sq)
    np.savez_compressed(tmp_path / "old.npz", header=np.array(json.dumps(header)), **arrays)
    old = load_result(tmp_path / "old.npz")
    assert old.groups is None and old.group_n is None and old.n_dead == 0
    np.testing.assert_array_equal(old.total, r.total)
    save_results([old, old], tmp_path / "draws.npz")
    assert [d.groups for d in load_results(tmp_path / "draws.npz")] == [None, None]


def test_save_results_keeps_every_draws_groups(tmp_path):
    rng = np.random.default_rng(2)
    draws = [_grouped(rng.random((5, 2, 2)), 2) for _ in range(3)]
    save_results(draws, tmp_path / "draws.npz")
    for got, want in zip(load_results(tmp_path / "draws.npz"), draws):
        np.testing.assert_array_equal(got.groups, want.groups)
        np.testing.assert_array_equal(got.group_n, want.group_n)


def test_numpy_values_and_fractional_strides_are_written_as_plain_json(tmp_path):
    write_json(
        {
            "map": np.array([[1, 2], [3, 4]]),
            "count": np.int64(7),
            "dead": np.bool_(True),
            "stride": Fraction(4, 2),
            "upsampled": Fraction(1, 2),
            "floats": np.array([0.5, np.inf]),
        },
        tmp_path / "m.json",
    )
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text) == {
        "map": [[1, 2], [3, 4]], "count": 7, "dead": True, "stride": 2, "upsampled": 0.5,
        "floats": [0.5, None],
    }  # fmt: skip
    assert '"stride": 2,' in text  # an integer stride stays an integer


def test_saving_no_results_is_refused_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="^no results to save$"):
        save_results([], tmp_path / "draws.npz")
    assert list(tmp_path.iterdir()) == []


def test_unreadable_or_missing_draws_files_are_told_apart(tmp_path):
    (tmp_path / "draws.npz").write_bytes(b"garbage")
    with pytest.raises(CorruptJob, match=r"draws.npz is unreadable \(ValueError\)"):
        load_results(tmp_path / "draws.npz")
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "missing.npz")


def test_a_recorded_file_that_is_gone_makes_the_job_corrupt(tmp_path):
    (tmp_path / "erf.npz").write_bytes(b"abc")
    write_json({"files": file_record(tmp_path, ["erf.npz"])}, tmp_path / "metrics.json")
    (tmp_path / "erf.npz").unlink()
    assert check_files(tmp_path, file_record(tmp_path, [])) is None  # nothing recorded: whole
    with pytest.raises(CorruptJob, match=r"erf.npz is missing; rerun that job \(resume=true\)"):
        read_job_metrics(tmp_path / "metrics.json")


@pytest.mark.parametrize("content", [None, "{not json"], ids=["missing", "not_json"])
def test_an_unreadable_metrics_json_is_a_one_line_corrupt_job_error(tmp_path, content):
    path = tmp_path / "metrics.json"
    if content is not None:
        path.write_text(content)
    why = "FileNotFoundError" if content is None else "JSONDecodeError"
    with pytest.raises(CorruptJob, match=rf"^{path} is unreadable \({why}\)$"):
        read_job_metrics(path)


@pytest.mark.parametrize("fails", ["open", "fsync"])
def test_a_folder_that_cannot_be_synced_still_gets_the_whole_file(tmp_path, monkeypatch, fails):
    """Not every filesystem lets a folder be opened or fsynced: that is best effort."""
    real_open, real_fsync = os.open, os.fsync

    def refuse_open(path, flags, *args, **kwargs):
        if Path(path) == tmp_path and flags == os.O_RDONLY:
            raise OSError(22, "Invalid argument")
        return real_open(path, flags, *args, **kwargs)

    def refuse_fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        return real_fsync(fd)

    if fails == "open":
        monkeypatch.setattr(os, "open", refuse_open)
    else:
        monkeypatch.setattr(os, "fsync", refuse_fsync)
    write_json({"done": True}, tmp_path / "m.json")
    assert read_json(tmp_path / "m.json") == {"done": True}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_stale_temp_files_of_dead_writers_go_and_those_of_live_ones_stay(tmp_path):
    no_such_pid = 2**22  # above Linux's largest pid limit (and macOS's): no process has it
    names = [f".m.json.{pid}.abcd.tmp" for pid in (no_such_pid, 1, os.getpid())]
    for name in names:
        (tmp_path / name).write_text("partial")
    assert clean_stale_temps(tmp_path) == [names[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])


def test_a_lock_file_removed_by_its_last_holder_meanwhile_is_taken_afresh(tmp_path, monkeypatch):
    """The previous holder unlinks .lock between our open and our flock: locking the unlinked
    file would let a third run lock a new one; the lock is taken again on the file on disk."""
    job = tmp_path / "job"
    real_flock, calls = store.fcntl.flock, []

    def flock(fd, operation):
        if not calls:
            (job / ".lock").unlink()  # the last holder leaves
        calls.append(fd)
        return real_flock(fd, operation)

    monkeypatch.setattr(store.fcntl, "flock", flock)
    with folder_lock(job):
        assert len(calls) == 2
        assert (job / ".lock").read_text() == f"{os.getpid()}\n"
    assert not job.exists()
