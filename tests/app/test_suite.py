"""The paper_figures suite's commands: what each member experiment is told."""

from pathlib import Path

from omegaconf import OmegaConf

from erf.app.suite import experiment_command, sweeps_seed


def _cfg(seed: int = 3):
    return OmegaConf.create(
        {"scale": {"name": "cpu"}, "device": "cpu", "seed": seed, "resume": False}
    )


def test_an_experiment_that_sweeps_its_own_seeds_keeps_them():
    """trained_vs_untrained repeats each setting over scale.<study>.seeds: a suite seed=N would
    replace the sweep by one seed."""
    assert sweeps_seed("trained_vs_untrained")
    argv = experiment_command(_cfg(), "trained_vs_untrained", Path("/x"))
    assert not any(a.startswith("seed=") for a in argv)


def test_the_suite_seed_is_passed_to_experiments_without_a_seed_sweep():
    for name in ("depth_sweep", "growth", "activation_sweep"):
        assert not sweeps_seed(name)
        assert "seed=3" in experiment_command(_cfg(3), name, Path("/x"))
