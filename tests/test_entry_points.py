"""The entry points name themselves as the user called them in their help text."""

import pytest

from erf.cli import main


@pytest.mark.parametrize(
    "argv, usage",
    [
        (["report", "--help"], "usage: erf report "),
        (["train-summary", "-h"], "usage: erf train-summary "),
    ],
)
def test_a_subcommands_help_names_the_erf_command(argv, usage, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code in (0, None)
    assert capsys.readouterr().out.startswith(usage)


@pytest.mark.parametrize("module", ["report", "trainjob"])
def test_the_python_m_entry_points_keep_their_own_names(module, capsys):
    from importlib import import_module

    app = import_module(f"erf.app.{module}")
    with pytest.raises(SystemExit):
        app.main(["--help"])
    assert capsys.readouterr().out.startswith(f"usage: python -m erf.{module} ")
