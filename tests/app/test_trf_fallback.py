"""Jobs whose TRF the graph analysis cannot give fall back to the measured support
(erf.probe.support.trf_or_support) and say so in metrics.json and the figure."""

import json
import math

import pytest
from hydra import compose, initialize_config_dir

from erf.app.build import build_model
from erf.app.config import CONFIG_DIR
from erf.app.jobs import run_job
from erf.io import job
from erf.io.job import heatmap_title, trf_label
from erf.rf.theory import theoretical_rf


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _figure_texts(monkeypatch) -> list[str]:
    """Every text the job's heatmap figure shows (suptitle, titles, legend, caption), collected
    as ``write_job`` saves it, with line breaks (the figure wraps long text) as spaces."""
    texts: list[str] = []
    save = job.save_figure

    def spy(fig, path):
        found = fig.findobj(lambda a: hasattr(a, "get_text"))
        texts.extend(" ".join(t.get_text().split()) for t in found)
        return save(fig, path)

    monkeypatch.setattr(job, "save_figure", spy)
    return texts


def test_an_untraceable_model_job_writes_the_measured_support_as_its_trf(tmp_path, monkeypatch):
    cfg = _cfg(
        "model=custom", "model._target_=helpers.custom_net.BranchyNet", "inputs.size=[32,32]",
        "probe.n_samples=2", "probe.batch_size=2",
    )  # fmt: skip
    texts = _figure_texts(monkeypatch)
    run_job(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["trf_source"] == "measured_support"
    assert metrics["trf_bound"] == "lower"  # beside trf_size, not only in a warning
    # the figure: the title's TRF number says it, and the square's legend label
    assert any(t.endswith(", TRF 5 px (measured support, lower bound)") for t in texts)
    assert "measured support (lower bound)" in texts
    assert metrics["trf_global_from"] is None
    assert (metrics["trf_rows"], metrics["trf_cols"]) == (5, 5)
    assert metrics["trf_interval"] == [[14, 18], [14, 18]]
    (note,) = [w for w in metrics["warnings"] if w.startswith("TRF from measured support")]
    assert note.startswith("TRF from measured support over 4 random inputs (a lower bound): ")
    assert "cannot trace BranchyNet" in note
    assert (tmp_path / "heatmap.png").exists()


def test_a_draws_job_of_an_untraceable_model_uses_the_measured_support(tmp_path):
    cfg = _cfg(
        "model=custom", "model._target_=helpers.custom_net.BranchyNet", "inputs.size=[32,32]",
        "probe.n_samples=2", "probe.batch_size=2", "probe.draws=2",
    )  # fmt: skip
    run_job(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["trf_source"] == "measured_support"
    assert metrics["trf_interval"] == [[14, 18], [14, 18]]
    assert len(metrics["draws"]["erf_trf_ratio"]) == 2  # every draw measured against it


def test_the_figure_label_says_which_box_it_shows():
    assert trf_label({"trf_source": "graph"}) == "TRF"
    graph = {"trf_size": 7.0, "trf_source": "graph", "trf_bound": "exact"}
    assert heatmap_title(graph) == "ERF size n/a, TRF 7 px"
    assert trf_label({"trf_source": "measured_support"}) == "measured support (lower bound)"
    shown = trf_label({"trf_source": "measured_support", "trf_global_from": "blocks.0.attn"})
    assert shown == "measured support (lower bound); TRF global (from blocks.0.attn)"


@pytest.mark.slow
def test_a_detector_backbone_layer_is_probed_in_original_input_pixels(tmp_path):
    pytest.importorskip("torchvision")
    # The detector's own transform resizes every input to 384x384 (min_size/max_size; its
    # default, 800, costs four times as much and tests nothing more).
    cfg = _cfg(
        "model=torchvision", "model.name=fasterrcnn_resnet50_fpn", "+model.min_size=384",
        "+model.max_size=384", "probe.target=backbone.body.layer3", "inputs.size=[48,48]",
        "probe.n_samples=1", "probe.batch_size=1",
    )  # fmt: skip
    run_job(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["trf_source"] == "measured_support"
    assert any("cannot trace FasterRCNN" in w for w in metrics["warnings"])
    assert any(
        w.startswith("the model's own transform resizes the input to 384x384")
        and "original 48x48 pixels" in w
        for w in metrics["warnings"]
    )
    # Oracle: the backbone's graph TRF at the resized 384x384 input (rows 59..325 of the
    # 24x24 layer3 map's centre unit), mapped back through the bilinear resize
    # (align_corners=False: resized pixel i reads source (i + 0.5) * 48 / 384 - 0.5).
    model = build_model(cfg.model)
    exact = theoretical_rf(model.backbone.body, (3, 384, 384), target="layer3")
    (a, b), _ = exact.interval((12, 12), clipped=True)
    assert (a, b) == (59, 325)
    lo, hi = math.floor((a + 0.5) * 48 / 384 - 0.5), math.ceil((b + 0.5) * 48 / 384 - 0.5)
    assert metrics["trf_interval"] == [[lo, hi], [lo, hi]] == [[6, 41], [6, 41]]


def test_a_vit_job_reports_the_graphs_global_trf_and_the_layer_it_comes_from(tmp_path):
    pytest.importorskip("timm")
    cfg = _cfg(
        "model=timm", "model.name=vit_tiny_patch16_224", "+model.img_size=64",
        "probe.target=blocks.0", "inputs.size=[64,64]", "probe.n_samples=1",
        "probe.batch_size=1",
    )  # fmt: skip
    run_job(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["trf_source"] == "graph"  # the graph follows the tokens into attention
    assert metrics["trf_bound"] == "exact"
    assert "lower bound" not in heatmap_title(metrics)
    assert metrics["trf_global_from"] == "blocks.0.attn"
    assert metrics["trf_interval"] == [[0, 63], [0, 63]]
    assert any(
        w.startswith("the target's TRF is global (from blocks.0.attn)") for w in metrics["warnings"]
    )
