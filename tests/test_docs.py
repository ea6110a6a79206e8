"""Numbers quoted in README.md and the experiments' READMEs equal, to the quoted digits, the
committed summary files they come from: a rerun that changes a file, or an edit that changes a
sentence, fails here until both agree again."""

import csv
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LUO = ROOT / "experiments" / "luo2016"
NUMBER = r"([−-]?\d+(?:\.\d+)?)"


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _value(quoted: str) -> float:
    return float(quoted.replace("−", "-"))


def _agrees(quoted: str, value: float) -> bool:
    """``value`` rounded to the digits of ``quoted`` is ``quoted``."""
    digits = len(quoted.split(".")[1]) if "." in quoted else 0
    return round(value, digits) == pytest.approx(_value(quoted), abs=10.0 ** -(digits + 3))


def _check(quoted: str, value: float, what: str) -> None:
    assert _agrees(quoted, value), f"{what}: the text says {quoted}, the file has {value:.6g}"


def _find(pattern: str, text: str, what: str) -> tuple[str, ...]:
    match = re.search(pattern, text)
    assert match, f"{what}: no sentence matches {pattern!r}"
    return match.groups()


INTERVAL_ROW_KEYS = (
    "trf_size", "erf_size", "erf_size_ci_low", "erf_size_ci_high", "erf_trf_ratio",
    "fit_r2", "fit_r2_ci_low", "fit_r2_ci_high",
)  # fmt: skip


def _check_interval_row(text: str, name: str, row: dict[str, str], what: str) -> None:
    """A table row ``| name | TRF | ERF [low, high] | ERF/TRF | R² [low, high] |`` of ``text``
    quotes ``row`` of a summary.csv, intervals included."""
    ci = rf"{NUMBER} \[{NUMBER}, {NUMBER}\]"  # value [low, high]
    found = _find(rf"\| {name} \| {NUMBER} \| {ci} \| {NUMBER} \| {ci} \|", text, f"{what} {name}")
    for quoted, key in zip(found, INTERVAL_ROW_KEYS):
        _check(quoted, float(row[key]), f"{what} {name} {key}")


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _slopes(path: Path) -> dict[tuple[str, str], dict]:
    return {(g["init"], g["activation"]): g for g in json.loads(_text(path))["groups"]}


def _section(text: str, heading: str) -> str:
    """The text of the ``## heading...`` section up to the next ``## ``."""
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_the_agreement_rule_holds_to_the_quoted_digits_and_no_further():
    assert _agrees("0.96", 0.9606) and _agrees("−0.43", -0.4311) and _agrees("22.74", 22.7376)
    assert not _agrees("0.89", 0.9606) and not _agrees("0.530", 0.5292)


def test_the_user_manual_quotes_the_committed_depth_sweep():
    text = _text(ROOT / "README.md")
    slopes = _slopes(ROOT / "experiments" / "depth_sweep" / "slopes.json")
    (trf,) = _find(rf"slope 1 at large depth; {NUMBER} over 5–40", text, "README TRF slope")
    for group in slopes.values():
        _check(trf, group["trf_size_slope"], "README: TRF slope over depths 5–40")
    uniform, relu = _find(
        rf"uniform weights give slope {NUMBER}.*?random weights with ReLU {NUMBER}",
        text.replace("\n", " "),
        "README ERF slopes",
    )
    _check(uniform, slopes["uniform", "none"]["erf_size_slope"], "README: uniform ERF slope")
    _check(relu, slopes["random", "relu"]["erf_size_slope"], "README: random + ReLU ERF slope")
    r_uniform, r_relu = _find(
        rf"ERF/TRF\s+falls with slope {NUMBER} and {NUMBER}", text, "README ERF/TRF slopes"
    )
    _check(r_uniform, slopes["uniform", "none"]["erf_trf_ratio_slope"], "README: uniform ERF/TRF")
    _check(r_relu, slopes["random", "relu"]["erf_trf_ratio_slope"], "README: ReLU ERF/TRF")
    sizes = _find(rf"Luo sizes\s+{NUMBER}, {NUMBER}, {NUMBER}, {NUMBER}", text, "README sizes")
    rows = _csv(ROOT / "experiments" / "depth_sweep" / "summary.csv")
    uniform_rows = sorted(
        (int(r["depth"]), float(r["erf_size"]))
        for r in rows
        if (r["init"], r["activation"]) == ("uniform", "none")
    )
    assert [d for d, _ in uniform_rows] == [5, 10, 20, 40]
    for quoted, (depth, size) in zip(sizes, uniform_rows):
        _check(quoted, size, f"README: uniform Luo size at depth {depth}")


def test_the_depth_sweep_write_ups_quote_their_slopes():
    table = _text(ROOT / "experiments" / "depth_sweep" / "README.md")
    slopes = _slopes(ROOT / "experiments" / "depth_sweep" / "slopes.json")
    for (init, act), group in slopes.items():
        row = rf"\| {init} / {act}\s*\| {NUMBER} ± {NUMBER} \| {NUMBER} ± {NUMBER} \|"
        size, size_se, ratio, ratio_se = _find(row, table, f"depth_sweep README {init}/{act}")
        _check(size, group["erf_size_slope"], f"depth_sweep README {init}/{act} size slope")
        _check(size_se, group["erf_size_slope_se"], f"depth_sweep README {init}/{act} its se")
        _check(ratio, group["erf_trf_ratio_slope"], f"depth_sweep README {init}/{act} ERF/TRF")
        _check(ratio_se, group["erf_trf_ratio_slope_se"], f"depth_sweep README {init}/{act} se")
    luo = _section(_text(LUO / "README.md"), "depth_sweep")
    slopes = _slopes(LUO / "depth_sweep" / "slopes.json")
    quoted = _find(
        rf"uniform {NUMBER} / {NUMBER}, random {NUMBER} / {NUMBER}, random \+ ReLU {NUMBER} / "
        rf"{NUMBER}",
        luo,
        "luo2016 depth_sweep slopes",
    )
    groups = [("uniform", "none"), ("random", "none"), ("random", "relu")]
    for (size, ratio), key in zip(zip(quoted[::2], quoted[1::2]), groups):
        _check(size, slopes[key]["erf_size_slope"], f"luo2016 depth_sweep {key} size slope")
        _check(ratio, slopes[key]["erf_trf_ratio_slope"], f"luo2016 depth_sweep {key} ERF/TRF")


def test_the_subsample_dilation_table_is_its_summary():
    section = _section(_text(LUO / "README.md"), "subsample_dilation")
    for row in _csv(LUO / "subsample_dilation" / "summary.csv"):
        _check_interval_row(section, re.escape(row["label"]), row, "subsample_dilation")


def test_the_init_sweep_table_is_its_summary():
    section = _section(_text(LUO / "README.md"), "init_sweep")
    rows = {
        (r["init"], r["activation"]): float(r["erf_size"])
        for r in _csv(LUO / "init_sweep" / "summary.csv")
    }
    for act in ("none", "relu"):
        quoted = _find(
            rf"\| {act}: ERF size \(px\) \| {NUMBER} \| {NUMBER} \| {NUMBER} \| \**{NUMBER}\**",
            section,
            f"init_sweep {act}",
        )
        for q, init in zip(quoted, ("uniform", "random", "kaiming", "rim_heavy")):
            _check(q, rows[init, act], f"init_sweep {init}/{act} ERF size")


def test_the_real_models_table_is_its_summary():
    text = _text(ROOT / "experiments" / "real_models" / "README.md")
    rows = _csv(ROOT / "experiments" / "real_models" / "summary.csv")
    assert len(rows) == 12
    cell = rf"(—|{NUMBER[1:-1]})"  # a number, or "—" where the summary has none (NaN)
    for row in rows:
        pattern = (
            rf"\| {row['name']} \| {NUMBER} \| {row['input_h']} \| {NUMBER} \[{NUMBER}, "
            rf"{NUMBER}\] \| {NUMBER} \| {cell} \| {cell} \| {cell} \| {cell} \|"
        )
        quoted = _find(pattern, text, f"real_models {row['job']}")
        keys = ("trf_size", "erf_size", "erf_size_ci_low", "erf_size_ci_high", "erf_trf_ratio")
        keys += tuple(f"area_ratio_{t}" for t in (20, 30, 50, 99))
        for q, key in zip(quoted, keys):
            if q == "—":
                assert row[key] == "", f"real_models {row['job']} {key}: '—' but {row[key]}"
            else:
                _check(q, float(row[key]), f"real_models {row['job']} {key}")


def test_the_resnet50_layer_profile_table_is_its_summary():
    text = _text(ROOT / "experiments" / "real_models" / "README.md")
    for row in _csv(
        ROOT / "experiments" / "real_models" / "layer_profile_resnet50" / "summary.csv"
    ):
        name = re.escape(row["target"])
        _check_interval_row(text, rf"{name}(?: \([a-z0-9]+\))?", row, "layer profile")


def test_the_rim_heavy_enlargement_is_quoted_with_its_interval_over_draws():
    section = _section(_text(LUO / "README.md"), "init_sweep")
    ratios = json.loads(_text(LUO / "init_sweep" / "per_draw.json"))["rim_heavy_over_random"]
    quoted = _find(
        rf"\*\*{NUMBER} \[{NUMBER}, {NUMBER}\]\*\* \(linear\) and \*\*{NUMBER} \[{NUMBER}, "
        rf"{NUMBER}\]\*\* \(ReLU\)",
        section,
        "init_sweep per-draw ratios",
    )
    for q, (act, key) in zip(
        quoted, [(a, k) for a in ("none", "relu") for k in ("mean", "low", "high")]
    ):
        _check(q, ratios[act][key], f"init_sweep rim_heavy / random {act} {key}")


TRAINED_LABELS = {
    "shift \\|COM − unit\\|": "shift_norm",
    "shift, rows": "shift_row",
    "shift, columns": "shift_col",
    "Luo size about own centre": "luo_size_own",
    "moment σ about own centre": "moment_sigma_own",
    "mass radius 50 about own centre": "mass_radius_50_own",
    "Luo size about the unit": "luo_size_unit",
    "moment σ about the unit": "moment_sigma_unit",
    "mass radius 50 about the unit": "mass_radius_50_unit",
}
CELL = rf"{NUMBER}(?: \[{NUMBER}, {NUMBER}\])? \(n = (\d+)\)"


def test_the_trained_vs_untrained_tables_are_its_shift_growth_summary():
    folder = LUO / "trained_vs_untrained"
    text = _text(folder / "README.md")
    table = {
        (r["setting"], r["quantity"], r["phase"]): r for r in _csv(folder / "shift_growth.csv")
    }
    for setting in ("classification", "segmentation"):
        section = text[text.index(f"\n### {setting}") :]
        section = section[: section.find("\n## ")]
        for label, key in TRAINED_LABELS.items():
            row = rf"\| {re.escape(label)} \| [^|]+ \| {CELL} \| {CELL} \| {CELL} \|"
            cells = _find(row, section, f"trained_vs_untrained {setting} {key}")
            for phase, (mean, low, high, n) in zip(
                ("before", "after", "change"), (cells[i : i + 4] for i in (0, 4, 8))
            ):
                entry = table[setting, key, phase]
                what = f"trained_vs_untrained {setting} {key} {phase}"
                assert int(n) == int(entry["n"]), f"{what}: n {n} vs {entry['n']}"
                _check(mean, float(entry["mean"]), what)
                if low is not None:
                    _check(low, float(entry["low"]), f"{what} low")
                    _check(high, float(entry["high"]), f"{what} high")
    assert len(_csv(folder / "summary.csv")) == 10  # 3 classification + 7 segmentation seeds


def test_the_trf_fuzz_census_table_quotes_the_committed_census_files():
    folder = ROOT / "experiments" / "trf_fuzz"
    text = _text(folder / "README.md")
    before = json.loads(_text(folder / "census_before.json"))
    after = json.loads(_text(folder / "census_after.json"))
    rows = re.findall(r"\| `([\w+]+)` \| (\d+) / (\d+) / (\d+) \| (\d+) / (\d+) / (\d+) \|", text)
    assert {r[0] for r in rows} == set(before) == set(after), "one table row per census family"
    for family, *counts in rows:
        for census, quoted in ((before, counts[:3]), (after, counts[3:])):
            got = census[family]["counts"]
            found = [got.get(k, 0) for k in ("exact", "refused", "wrong")]
            assert [int(q) for q in quoted] == found, f"{family}: {quoted} vs {found}"


def test_every_top_level_name_the_readme_uses_exists():
    import importlib

    import erf

    text = _text(ROOT / "README.md")
    names = set(re.findall(r"`[^`]*?(?<![{\w.])erf\.([A-Za-z_]\w*)", text))  # not ${erf.dirname}
    names -= {"npz"}  # the file erf.npz
    missing = []
    for name in sorted(names):
        if hasattr(erf, name):
            continue
        try:
            importlib.import_module(f"erf.{name}")
        except ImportError:
            missing.append(name)
    assert names and not missing, missing
