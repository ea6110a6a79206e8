"""Stop requests (``erf.app.signals``) are never lost: one seen by a poll stops the job, one
that comes after the job's last poll stops the command right after the job, one pending when
a job starts stops it before any work, and a second SIGINT exits at once in one line."""

import os
import signal

import pytest

from erf.app.errors import JobInterrupted
from erf.app.signals import stop_requests, watching_signals


def _send(signum):
    os.kill(os.getpid(), signum)  # the handler runs before the next Python statement


def test_without_a_request_the_poll_is_false_and_the_job_returns():
    with stop_requests() as should_stop:
        assert should_stop() is False


def test_a_request_seen_by_the_poll_leaves_the_job_to_stop_itself():
    # the job's own stop (ProbeInterrupted, ...) wins
    with pytest.raises(KeyError), stop_requests() as should_stop:
        _send(signal.SIGTERM)
        assert should_stop()
        raise KeyError("the job stopped")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_request_after_the_last_poll_stops_right_after_the_job(signum):
    done = []
    last_batch = "after this job's last batch: its files are"
    with pytest.raises(JobInterrupted, match=last_batch), stop_requests():
        _send(signum)  # e.g. while the job writes its files: no poll follows
        done.append("files written")
    assert done == ["files written"]


def test_a_request_between_two_jobs_stops_the_next_one_before_it_starts():
    started = []
    with watching_signals():
        with stop_requests():
            pass
        _send(signal.SIGTERM)  # Hydra is setting up the next job of the sweep
        before = "SIGTERM: stopped before this job started"
        with pytest.raises(JobInterrupted, match=before), stop_requests():
            started.append(True)
    assert not started


def test_handlers_are_restored_and_requests_forgotten_after_the_command():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(JobInterrupted), watching_signals(), stop_requests():
        _send(signal.SIGTERM)
    assert {sig: signal.getsignal(sig) for sig in before} == before
    with stop_requests() as should_stop:
        assert not should_stop()


def test_a_second_ctrl_c_exits_at_once_in_one_line(capsys):
    reached = []
    with pytest.raises(SystemExit) as info, stop_requests():
        _send(signal.SIGINT)
        _send(signal.SIGINT)
        reached.append(True)
    assert info.value.code == 130 and not reached
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: stopped at once by a second Ctrl-C") and "\n" not in err


def test_a_second_sigterm_only_repeats_the_request():
    with pytest.raises(JobInterrupted), stop_requests() as should_stop:
        _send(signal.SIGTERM)
        _send(signal.SIGTERM)
        assert should_stop()
