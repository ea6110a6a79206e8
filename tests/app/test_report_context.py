"""What ``erf report`` reads from a sweep folder it did not write (erf.app.callbacks): a
received ``multirun.yaml`` is data, never evaluated."""

import json

from erf.app.callbacks import sweep_context, write_report

MULTIRUN = """\
hydra:
  overrides:
    task:
    - label=${oc.env:ERF_TEST_SECRET}
    - model.depth=5,10
  sweeper:
    params:
      model.depth: ${oc.env:ERF_TEST_SECRET}
  runtime:
    choices:
      experiment: depth_sweep
"""


def test_environment_interpolations_in_a_received_multirun_yaml_are_shown_as_written(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("ERF_TEST_SECRET", "marker-secret-7f3a")
    (tmp_path / "multirun.yaml").write_text(MULTIRUN)
    context = sweep_context(tmp_path)
    assert "marker-secret-7f3a" not in json.dumps(context)
    assert context["command"].endswith("label=${oc.env:ERF_TEST_SECRET} model.depth=5,10")
    assert context["sweeper_params"] == {"model.depth": "${oc.env:ERF_TEST_SECRET}"}
    assert context["experiment"] == "depth_sweep"


def test_the_report_page_of_a_received_folder_carries_no_environment_value(tmp_path, monkeypatch):
    monkeypatch.setenv("ERF_TEST_SECRET", "marker-secret-7f3a")
    (tmp_path / "multirun.yaml").write_text(MULTIRUN)
    job = tmp_path / "0_depth5"
    job.mkdir()
    (job / "metrics.json").write_text('{"erf_size": 5.0}')
    write_report(tmp_path)
    for name in ("report.html", "report.md"):
        assert "marker-secret-7f3a" not in (tmp_path / name).read_text(), name


def test_an_interpolation_in_an_override_is_shown_as_written_not_resolved(tmp_path):
    # label=d${model.depth} in a sweep whose saved config has no model.depth: resolving it
    # failed after every job had finished
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task:\n    - label=d${model.depth}\n"
    )
    assert sweep_context(tmp_path)["command"].endswith("label=d${model.depth}")
