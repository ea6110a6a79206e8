"""A failed job: the traceback goes to the log files, one line to the console."""

import logging

from erf.app.errors import log_traceback, one_line


def test_the_traceback_goes_to_log_files_only(tmp_path, capsys):
    root = logging.getLogger()
    file_handler = logging.FileHandler(tmp_path / "run.log")
    console = logging.StreamHandler()
    root.addHandler(file_handler)
    root.addHandler(console)
    try:
        try:
            {}["missing"] + 1
        except KeyError as exc:
            paths = log_traceback(TypeError(f"bad {exc}"))
            try:
                raise RuntimeError("engine\n  broke") from exc
            except RuntimeError as err:
                paths = log_traceback(err)
                assert one_line(err) == "engine broke"
    finally:
        root.removeHandler(file_handler)
        root.removeHandler(console)
        file_handler.close()
    assert str(tmp_path / "run.log") in paths
    text = (tmp_path / "run.log").read_text()
    assert "error: engine broke" in text and "Traceback" in text and "KeyError" in text
    assert "RuntimeError: engine" in text
    assert "Traceback" not in capsys.readouterr().err
