"""Job folder names built from config values (erf.app.config.safe_dirname, the configs'
``${erf.dirname:...}``): one folder inside the sweep, whatever the value."""

import pytest
import yaml

from erf.app.config import CONFIG_DIR, safe_dirname


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("../../x", ".._.._x"),
        ("a/b\\c", "a_b_c"),
        ("..", "_"),
        ("", "_"),
        ("dropout (eval)", "dropout__eval_"),
        ("depth5_uniform-relu,k=3+x.y", "depth5_uniform-relu,k=3+x.y"),
    ],
)
def test_a_value_becomes_one_safe_folder_name(text, name):
    assert safe_dirname(text) == name


def test_every_sweep_subdir_of_the_shipped_configs_goes_through_the_resolver():
    subdirs = []
    for path in CONFIG_DIR.rglob("*.yaml"):
        sweep = ((yaml.safe_load(path.read_text()) or {}).get("hydra") or {}).get("sweep") or {}
        if "subdir" in sweep:
            subdirs.append((path.name, str(sweep["subdir"])))
    assert len(subdirs) >= 14
    bad = [(n, s) for n, s in subdirs if not (s.startswith("${erf.dirname:") and s.endswith("}"))]
    assert not bad, bad
