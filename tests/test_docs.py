"""Numbers quoted in README.md, the documentation pages (docs/) and the experiments' READMEs
equal, to the quoted digits, the committed summary files they come from: a rerun that changes a
file, or an edit that changes a sentence, fails here until both agree again. Each check reads
the page where its number is quoted; the README's seeded examples are run and must print what
the README says they print."""

import csv
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from erf.analysis.metrics import LUO_FRACTION

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
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


def test_the_concepts_page_quotes_the_committed_depth_sweep():
    text = _text(DOCS / "concepts.md")  # "What the depth sweep shows" (was in README.md)
    slopes = _slopes(ROOT / "experiments" / "depth_sweep" / "slopes.json")
    (trf,) = _find(rf"slope 1 at large depth; {NUMBER} over 5–40", text, "concepts TRF slope")
    for group in slopes.values():
        _check(trf, group["trf_size_slope"], "concepts: TRF slope over depths 5–40")
    uniform, relu = _find(
        rf"uniform weights give slope {NUMBER}.*?random weights with ReLU {NUMBER}",
        text.replace("\n", " "),
        "concepts ERF slopes",
    )
    _check(uniform, slopes["uniform", "none"]["erf_size_slope"], "concepts: uniform ERF slope")
    _check(relu, slopes["random", "relu"]["erf_size_slope"], "concepts: random + ReLU ERF slope")
    r_uniform, r_relu = _find(
        rf"ERF/TRF\s+falls with slope {NUMBER} and {NUMBER}", text, "concepts ERF/TRF slopes"
    )
    _check(r_uniform, slopes["uniform", "none"]["erf_trf_ratio_slope"], "concepts: uniform ERF/TRF")
    _check(r_relu, slopes["random", "relu"]["erf_trf_ratio_slope"], "concepts: ReLU ERF/TRF")
    sizes = _find(rf"Luo sizes\s+{NUMBER}, {NUMBER}, {NUMBER}, {NUMBER}", text, "concepts sizes")
    rows = _csv(ROOT / "experiments" / "depth_sweep" / "summary.csv")
    uniform_rows = sorted(
        (int(r["depth"]), float(r["erf_size"]))
        for r in rows
        if (r["init"], r["activation"]) == ("uniform", "none")
    )
    assert [d for d, _ in uniform_rows] == [5, 10, 20, 40]
    for quoted, (depth, size) in zip(sizes, uniform_rows):
        _check(quoted, size, f"concepts: uniform Luo size at depth {depth}")


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


def test_every_top_level_name_the_readme_and_the_docs_use_exists():
    import importlib

    import erf

    text = "\n".join(_text(p) for p in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))])
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


# Tables of the Luo write-up that quote study files: slopes, shape (fit R²) and size studies.

SIGNED = r"([−+-]?\d+(?:\.\d+)?)"  # a number that may carry its sign, "+0.0018"
CI = rf"\**{SIGNED} \[{SIGNED}, {SIGNED}\]\**"  # value [low, high], maybe bold
CELL_CI = rf"\**{SIGNED}(?: \[{SIGNED}, {SIGNED}\])?\**"  # a value, its interval if quoted


def _subsection(text: str, heading: str) -> str:
    """The text of the ``### heading...`` subsection up to the next ``##`` heading."""
    start = text.index(f"\n### {heading}")
    end = text.find("\n##", start + 1)
    return text[start : end if end >= 0 else len(text)]


def _check_ci(quoted: Sequence[str | None], values: Sequence[float], what: str) -> None:
    """``quoted`` = (value, low, high) as matched (low and high None where no interval is
    quoted) against ``values`` = (value, low, high) from a file."""
    value, low, high = quoted
    _check(value, values[0], what)
    if low is not None:
        _check(low, values[1], f"{what} low")
        _check(high, values[2], f"{what} high")


def _triple(row: dict, key: str, low: str = "_low", high: str = "_high") -> tuple[float, ...]:
    return float(row[key]), float(row[key + low]), float(row[key + high])


def test_the_growth_table_is_its_growth_slopes():
    section = _section(_text(LUO / "README.md"), "growth")
    slopes = {r["group"]: r for r in _csv(LUO / "growth" / "growth_slopes.csv")}
    for init, act in (
        ("uniform", "none"),
        ("uniform", "relu"),
        ("random", "none"),
        ("random", "relu"),
    ):
        row, what = slopes[f"{init}/{act}/ours"], f"growth {init}/{act}"
        found = _find(rf"\| {init} / {act} \| {CI} \| {CI} \|", section, what)
        _check_ci(found[:3], _triple(row, "erf_size_slope"), f"{what} size slope")
        _check_ci(found[3:], _triple(row, "erf_trf_ratio_slope"), f"{what} ERF/TRF slope")
    for name, key in (("box", "box"), ("√box", "sqrt_box")):
        null = slopes[f"null model: {key}"]
        size, ratio = _find(
            rf"\| null model: {name} \([^)]*\) \| \**{SIGNED}\** \| \**{SIGNED}\** \|",
            section,
            f"growth null {name}",
        )
        _check(size, float(null["erf_size_slope"]), f"growth null {name} size slope")
        _check(ratio, float(null["erf_trf_ratio_slope"]), f"growth null {name} ERF/TRF slope")


def test_the_protocol_table_is_its_growth_slopes():
    section = _subsection(_text(LUO / "README.md"), "growth under both protocols")
    slopes = {r["group"]: r for r in _csv(LUO / "growth" / "protocols" / "growth_slopes.csv")}
    for act in ("none", "relu"):
        for protocol in ("ours", "luo"):
            row, what = slopes[f"random/{act}/{protocol}"], f"protocols random/{act}/{protocol}"
            found = _find(
                rf"\| random / {act} \| {protocol} \| {CI} \| {CI} \| {CI} \|", section, what
            )
            _check_ci(found[:3], _triple(row, "pooled_erf_size_slope"), f"{what} pooled")
            _check_ci(found[3:6], _triple(row, "pooled_erf_trf_ratio_slope"), f"{what} ratio")
            _check_ci(found[6:], _triple(row, "erf_size_slope"), f"{what} per-draw")
    null = slopes["null model: sqrt_box"]
    size, ratio = _find(
        rf"\| null model √box [^|]*\| — \| {SIGNED} \| {SIGNED} \|", section, "protocols null model"
    )
    _check(size, float(null["erf_size_slope"]), "protocols √box size slope")
    _check(ratio, float(null["erf_trf_ratio_slope"]), "protocols √box ERF/TRF slope")


def test_the_reduction_table_is_its_growth_slopes():
    section = _subsection(_text(LUO / "README.md"), "Reduction table")
    slopes = {r["group"]: r for r in _csv(LUO / "growth_reductions" / "growth_slopes.csv")}
    for reduce, null in (("abs", "sqrt_box"), ("relu", "sqrt_box"), ("square", "box")):
        row, what = slopes[reduce], f"reductions {reduce}"
        found = _find(
            rf"\| `{reduce}`(?:\\\||[^|])*\| {CI} \| {CI} \| {CI} \| {CI} \| √?box: "
            rf"{SIGNED} / {SIGNED} \|",
            section,
            what,
        )
        _check_ci(found[:3], _triple(row, "erf_size_slope"), f"{what} size slope")
        _check_ci(found[3:6], _triple(row, "pooled_erf_size_slope"), f"{what} pooled")
        _check_ci(found[6:9], _triple(row, "erf_trf_ratio_slope"), f"{what} ERF/TRF slope")
        _check_ci(found[9:12], _triple(row, "pooled_erf_trf_ratio_slope"), f"{what} pooled")
        null_row = slopes[f"null model: {null}"]
        _check(found[12], float(null_row["erf_size_slope"]), f"{what} null size slope")
        _check(found[13], float(null_row["erf_trf_ratio_slope"]), f"{what} null ERF/TRF")


def _shape(path: Path, *keys: str) -> dict[tuple[str, ...], dict[str, str]]:
    return {tuple(r[k] for k in keys): r for r in _csv(path)}


def _differences(path: Path, *keys: str) -> dict[tuple[str, ...], dict]:
    rows = json.loads(_text(path))["rows"]
    return {tuple(str(r[k]) for k in keys): r for r in rows}


def _diff(row: dict) -> tuple[float, float, float]:
    return row["estimate"], row["low"], row["high"]


def test_the_activation_table_is_its_shape_summary():
    section = _section(_text(LUO / "README.md"), "activation_sweep")
    rows = _shape(LUO / "activation_sweep" / "shape.csv", "protocol", "activation")
    for (protocol, act), row in rows.items():
        draws, inputs = int(row["n_draws"]), int(row["n_samples"]) // int(row["n_draws"])
        found = _find(
            rf"\| {protocol} \| {act} \| {draws} × {inputs} \| {CI} \|",
            section,
            f"activation {protocol}/{act}",
        )
        _check_ci(found, _triple(row, "fit_r2"), f"activation {protocol}/{act} fit R²")
    diffs = _differences(LUO / "activation_sweep" / "r2_difference.json", "protocol")
    found = _find(
        rf"Paired R²\(none\) − R²\(relu\): ours {CI} .*?luo\s+{CI}",
        section,
        "activation paired differences",
    )
    _check_ci(found[:3], _diff(diffs["ours",]), "activation paired difference, ours")
    _check_ci(found[3:], _diff(diffs["luo",]), "activation paired difference, luo")


def test_the_activation_settings_table_is_its_shape_summary():
    section = _section(_text(LUO / "README.md"), "activation_sweep")
    folder = LUO / "activation_settings"
    rows = _shape(folder / "shape.csv", "depth", "channels", "protocol", "activation")
    diffs = _differences(folder / "r2_difference.json", "depth", "channels", "protocol")
    for depth, channels, protocol in diffs:
        what = f"activation_settings {depth}/{channels}/{protocol}"
        found = _find(
            rf"\| {depth} \| {channels} \| {protocol} \| {CI} \| {CI} \| {CI} \|", section, what
        )
        for quoted, act in ((found[:3], "none"), (found[3:6], "relu")):
            row = rows[depth, channels, protocol, act]
            _check_ci(quoted, _triple(row, "fit_r2"), f"{what} R² {act}")
        _check_ci(found[6:], _diff(diffs[depth, channels, protocol]), f"{what} paired")


def test_the_one_channel_seeding_sentence_is_its_shape_summary():
    section = _section(_text(LUO / "README.md"), "activation_sweep")
    folder = LUO / "activation_sweep" / "channel0"
    rows = _shape(folder / "shape.csv", "protocol", "activation")
    diffs = _differences(folder / "r2_difference.json", "protocol")
    found = _find(
        rf"R² none {CI} vs\s+ReLU {CI}, paired difference {CI}", section, "channel 0, luo"
    )
    _check_ci(found[:3], _triple(rows["luo", "none"], "fit_r2"), "channel 0 luo R² none")
    _check_ci(found[3:6], _triple(rows["luo", "relu"], "fit_r2"), "channel 0 luo R² relu")
    _check_ci(found[6:], _diff(diffs["luo",]), "channel 0 luo paired difference")
    ours = _find(
        rf"ReLU is again the more Gaussian \({CI}", section.replace("\n  ", " "), "channel 0, ours"
    )
    _check_ci(ours, _diff(diffs["ours",]), "channel 0 ours paired difference")


def test_the_saturation_table_is_its_shape_summaries():
    section = _subsection(_text(LUO / "README.md"), "activation_saturation")
    folder = LUO / "activation_saturation"
    diffs = _differences(folder / "r2_difference.json", "protocol", "activation", "gain")
    for protocol, path in (("luo", folder / "luo" / "shape.csv"), ("ours", folder / "shape.csv")):
        rows = _shape(path, "activation", "weight_scale")
        # none and relu are quoted under luo only: they do not depend on the gain
        for act in (
            ("none", "relu", "tanh", "sigmoid") if protocol == "luo" else ("tanh", "sigmoid")
        ):
            what = f"saturation {act}/{protocol}"
            match = re.search(
                rf"\| {act} \| {protocol} \| {CI} \| (.+?) \| (.+?) \| (.+?) \| "
                rf"(.+?) \|",
                section,
            )
            assert match, f"{what}: no table row"
            _check_ci(match.groups()[:3], _triple(rows[act, "1"], "fit_r2"), f"{what} g = 1")
            cells = match.groups()[3:]
            if cells[:3] == ("same", "same", "same"):  # bitwise the same R² at every gain
                assert {rows[act, g]["fit_r2"] for g in ("1", "2", "4", "8")} == {
                    rows[act, "1"]["fit_r2"]
                }, what
                assert cells[3].startswith("0 "), what
                continue
            for cell, gain in zip(cells[:3], ("2", "4", "8")):
                quoted = _find(rf"^{CELL_CI}$", cell, f"{what} g = {gain}")
                _check_ci(quoted, _triple(rows[act, gain], "fit_r2"), f"{what} g = {gain}")
            quoted = _find(rf"^{CI}$", cells[3], f"{what} paired")
            _check_ci(quoted, _diff(diffs[protocol, act, "8"]), f"{what} paired R²(1) − R²(8)")


def test_the_saturation_differences_in_the_text_are_its_paired_differences():
    section = _subsection(_text(LUO / "README.md"), "activation_saturation")
    text = re.sub(r"\s+", " ", section)
    diffs = _differences(
        LUO / "activation_saturation" / "r2_difference.json", "protocol", "activation", "gain"
    )
    found = _find(
        rf"tanh's paired difference is {CI} at g = 2, {CI} at g = 4 and {CI} at g = 8; "
        rf"sigmoid's only at g = 8 \({CI}\)",
        text,
        "saturation paired differences",
    )
    for i, key in enumerate([("tanh", "2"), ("tanh", "4"), ("tanh", "8"), ("sigmoid", "8")]):
        _check_ci(found[3 * i : 3 * i + 3], _diff(diffs[("luo", *key)]), f"saturation {key}")


def test_the_dropout_skip_table_is_its_summary():
    section = _section(_text(LUO / "README.md"), "dropout_skip")
    for row in _csv(LUO / "dropout_skip" / "summary.csv"):
        what = f"dropout_skip {row['label']}"
        found = _find(
            rf"\| {row['label']} \| {NUMBER} \| {CI} \| {NUMBER} \| {NUMBER} \| {CI} \|",
            section,
            what,
        )
        _check(found[0], float(row["trf_size"]), f"{what} TRF")
        _check_ci(found[1:4], _triple(row, "erf_size", "_ci_low", "_ci_high"), f"{what} ERF")
        _check(found[4], float(row["erf_trf_ratio"]), f"{what} ERF/TRF")
        _check(found[5], float(row["sigma_x"]), f"{what} σ_x")
        _check_ci(found[6:], _triple(row, "fit_r2", "_ci_low", "_ci_high"), f"{what} fit R²")


def test_the_skip_scale_table_is_its_skip_scale_summary():
    section = _subsection(_text(LUO / "README.md"), "skip_scale")
    rows = _shape(LUO / "skip_scale" / "skip_scale.csv", "batch_norm", "branch_scale")
    cell = rf"{CELL_CI}¹?"
    for alpha in ("0", "0.25", "0.5", "1", "2"):
        what = f"skip_scale α = {alpha}"
        found = _find(
            rf"\| {re.escape(alpha)}(?: \([^)]*\))? \| {cell} \| {cell} \| "
            rf"{NUMBER} \|",
            section,
            what,
        )
        for quoted, bn in ((found[:3], "False"), (found[3:6], "True")):
            row = rows[bn, alpha]
            _check_ci(quoted, _triple(row, "erf_size"), f"{what} batch_norm={bn}")
            _check(found[6], float(row["trf_size"]), f"{what} TRF")
    plain = json.loads(_text(LUO / "skip_scale" / "plain_control.json"))["jobs"]
    sizes = {job["batch_norm"]: job for job in plain}
    no_bn, bn, trf = _find(
        rf"\| plain stack \(no skips\) \| {NUMBER} \(no interval committed\) \| {NUMBER} "
        rf"\(no interval committed\) \| {NUMBER} \|",
        section,
        "skip_scale plain control",
    )  # the control's file holds no interval, so none is quoted
    _check(no_bn, sizes[False]["erf_size"], "skip_scale plain control, no batch-norm")
    _check(bn, sizes[True]["erf_size"], "skip_scale plain control, batch-norm")
    _check(trf, sizes[False]["trf_size"], "skip_scale plain control TRF")


def test_the_gap_against_runs_table_is_its_json():
    text = _text(LUO / "README.md")
    gaps = json.loads(_text(LUO / "activation_settings" / "gap_vs_runs.json"))
    blocks = {b["runs"]: b for b in gaps["blocks"]}
    for nested in gaps["nested"]:
        n = nested["runs"]
        what = f"gap against runs, N = {n}"
        found = _find(
            rf"\| {n:,} \| {NUMBER} \| {NUMBER} \| {SIGNED} \| (?:{SIGNED} ± {NUMBER} "
            rf"\((\d+) blocks\)|\(one block\)) \|",
            text,
            what,
        )
        _check(found[0], nested["r2_none"], f"{what} R² none")
        _check(found[1], nested["r2_relu"], f"{what} R² relu")
        _check(found[2], nested["gap"], f"{what} gap")
        if n in blocks:
            _check(found[3], blocks[n]["gap_mean"], f"{what} block mean")
            _check(found[4], blocks[n]["gap_se"], f"{what} block s.e.")
            assert int(found[5]) == blocks[n]["blocks"], what
        else:
            assert found[3] is None, f"{what}: one block has no mean over blocks"


def test_the_run_to_run_gain_and_dead_runs_are_the_gap_json():
    gaps = json.loads(_text(LUO / "activation_settings" / "gap_vs_runs.json"))
    for path, pattern in (
        (LUO / "README.md", rf"map sum is {NUMBER} \(linear\) and {NUMBER} \(ReLU"),
        (DOCS / "scaling.md", rf"variation {NUMBER} for a random linear stack, {NUMBER} with"),
    ):
        text = re.sub(r"\s+", " ", _text(path))
        linear, relu = _find(pattern, text, f"{path.name}: gain CV")
        _check(linear, gaps["gain_cv"]["none"], f"{path.name}: gain CV, linear")
        _check(relu, gaps["gain_cv"]["relu"], f"{path.name}: gain CV, ReLU")
    text = re.sub(r"\s+", " ", _text(LUO / "README.md"))
    (dead,) = _find(r"(\d+) of the 4,096 ReLU runs are dead, none of the linear", text, "dead")
    assert int(dead) == gaps["n_dead_runs"]["relu"] and gaps["n_dead_runs"]["none"] == 0


def test_the_dead_draw_counts_are_the_summaries_n_dead_draws():
    """The sentences quote ``n_dead_draws``; a summary.csv rendered before that column
    existed cannot confirm them, and the test says so instead of passing silently."""
    text = re.sub(r"\s+", " ", _section(_text(LUO / "README.md"), "activation_sweep"))
    settings = _shape(
        LUO / "activation_settings" / "summary.csv", "depth", "channels", "protocol", "activation"
    )
    channel0 = _shape(
        LUO / "activation_sweep" / "channel0" / "summary.csv", "protocol", "activation"
    )
    _find(r"One of the 64 one-input ReLU runs at depth 10 with 8 channels was dead", text, "d")
    luo, ours = _find(
        r"under luo \**(\d+) of the 64 one-input ReLU draws are dead.*?Under "
        r"ours \((\d+) of 4 ReLU draws dead\)",
        text,
        "channel 0 dead",
    )
    quoted = [
        (settings["10", "8", "luo", "relu"], 1),
        (channel0["luo", "relu"], int(luo)),
        (channel0["ours", "relu"], int(ours)),
    ]
    if any("n_dead_draws" not in row for row, _ in quoted):
        pytest.skip("summary.csv predates its n_dead_draws column: re-render it to check")
    for row, count in quoted:
        assert int(row["n_dead_draws"]) == count, f"{row['job']}: {row['n_dead_draws']}"


# The metric columns of the write-up's cross_arch table, in the order the table shows them.
CROSS_ARCH_TABLE_COLUMNS = (
    "area_ratio_20",
    "area_ratio_30",
    "area_ratio_50",
    "area_ratio_99",
    "erf_size",
)


@pytest.mark.parametrize(("study", "n_rows"), [("cross_arch", 18), ("hf_models", 6)])
def test_the_cross_arch_table_is_its_study_table(study, n_rows):
    """Each cell quotes the mean over seeds and, in brackets, its interval; a cell without
    brackets is one whose seeds agree (a zero-width interval), as the write-up says."""
    folder = ROOT / "experiments" / study
    text = _text(folder / "README.md")
    rows = _csv(folder / "cross_arch.csv")
    assert len(rows) == n_rows
    for row in rows:
        what = f"cross_arch {row['label']} {row['inputs']}"
        cells = " \\| ".join([f"(?:{CELL_CI}|(n/a))"] * 5)
        found = _find(
            rf"\| {re.escape(row['label'])} \| {row['inputs']} \| {row['input_h']} \| "
            rf"{row['n_seeds']} \| {cells} \| ({NUMBER[1:-1]}|global) \| (.+?) \|",
            text,
            what,
        )
        for i, key in enumerate(CROSS_ARCH_TABLE_COLUMNS):
            if found[4 * i + 3] is not None:  # n/a: no seed has a value
                assert int(float(row[f"{key}_n"])) == 0, f"{what} {key}: n/a, but values"
                continue
            values = tuple(float(row[f"{key}_{s}"]) for s in ("mean", "lo", "hi"))
            _check_ci(found[4 * i : 4 * i + 3], values, f"{what} {key}")
            if found[4 * i + 1] is None:
                assert values[1] == values[2], f"{what} {key}: no interval quoted, but a spread"
        trf, ratio = found[20:]
        if row["trf_global"] == "True":
            assert (trf, ratio) == ("global", "n/a (global)"), what
            continue
        _check(trf, float(row["trf_size_mean"]), f"{what} TRF")
        quoted = _find(rf"^{CELL_CI}$", ratio, f"{what} ERF/TRF")
        values = tuple(float(row[f"erf_trf_ratio_{s}"]) for s in ("mean", "lo", "hi"))
        _check_ci(quoted, values, f"{what} ERF/TRF")


def test_the_hf_models_write_up_quotes_each_jobs_mass_radius_and_luo_size():
    folder = ROOT / "experiments" / "hf_models"
    text = " ".join(_text(folder / "README.md").split())
    jobs = _csv(folder / "summary.csv")
    by_label: dict[str, list[dict[str, str]]] = {}
    for job in sorted(jobs, key=lambda j: int(j["job"].split("_")[0])):
        by_label.setdefault(job["label"], []).append(job)
    pairs = [("DeiT-S", "ViT-S (HF)"), ("Swin-T", "Swin-T (HF)")]
    pairs.append(("ConvNeXt-T (ls 1)", "ConvNeXt-T (ls 1, HF)"))
    for timm_label, hf_label in pairs:
        quoted = [f"{float(j['mass_radius_50']):.2f}" for j in by_label[timm_label]]
        theirs = [f"{float(j['mass_radius_50']):.2f}" for j in by_label[hf_label]]
        assert ", ".join(quoted) in text and ", ".join(theirs) in text, (timm_label, quoted)
    for label in ("Swin-T", "Swin-T (HF)"):
        sizes = ", ".join(f"{float(j['erf_size']):.1f}" for j in by_label[label])
        assert f"{sizes} px for" in text, (label, sizes)


def test_the_memory_table_is_its_estimate_file():
    folder = ROOT / "experiments" / "memory"
    text = _text(folder / "README.md")
    jobs = json.loads(_text(folder / "estimate_vs_peak.json"))
    mib = 2.0**20
    for name, job in jobs.items():
        found = _find(
            rf"\| {re.escape(name)} \| {NUMBER} \| {NUMBER} \| {NUMBER} \|", text, f"memory {name}"
        )
        _check(found[0], job["estimate"] / mib, f"memory {name} estimate")
        _check(found[1], job["peak"] / mib, f"memory {name} peak")
        _check(found[2], job["ratio"], f"memory {name} ratio")


def test_the_erf_monitor_write_up_quotes_its_csv_and_run_file():
    folder = ROOT / "experiments" / "erf_monitor"
    text = _text(folder / "README.md")
    rows = _csv(folder / "erf_monitor.csv")
    ci = rf"{NUMBER} \[{NUMBER}, {NUMBER}\]"
    keys = ("erf_size", "erf_size_ci_low", "erf_size_ci_high", "erf_trf_ratio", "fit_r2",
            "probe_time_s")  # fmt: skip
    for row in rows:
        what = f"erf_monitor epoch {row['epoch']}"
        pattern = rf"\| {row['epoch']} \| {ci} \| {NUMBER} \| {NUMBER} \| {NUMBER} \|"
        for quoted, key in zip(_find(pattern, text, what), keys):
            _check(quoted, float(row[key]), f"{what} {key}")
    run = json.loads(_text(folder / "run.json"))
    assert run["weights_bitwise_equal"] is True and "`weights_bitwise_equal: true`" in text
    took, without = _find(rf"took {NUMBER} s in all (?s:.)*?against {NUMBER} s", text, "cost")
    _check(took, run["monitor_step_s"], "erf_monitor step time")
    _check(without, run["train_s_without_monitor"], "erf_monitor training time")
    first, last = _find(rf"from {NUMBER} px at initialisation to\s+{NUMBER} px", text, "growth")
    _check(first, float(rows[0]["erf_size"]), "erf_monitor size at init")
    _check(last, float(rows[-1]["erf_size"]), "erf_monitor size at the end")


def _summary_row(study: str) -> str:
    """The row of the luo2016 summary table whose first cell starts with ``study``."""
    text = _text(LUO / "README.md")
    start = text.index("\n## Summary")
    (row,) = _find(rf"\n(\| {re.escape(study)}[^\n]*)", text[start:], f"summary row {study}")
    return row


def test_the_summary_table_quotes_the_growth_and_depth_sweep_slopes():
    slopes = {r["group"]: r for r in _csv(LUO / "growth" / "growth_slopes.csv")}
    relu = slopes["random/relu/ours"]
    found = _find(
        rf"\*\*{NUMBER}\*\* \[{NUMBER}, {NUMBER}\].*null model √box: {NUMBER}",
        _summary_row("growth, random + ReLU, size slope"),
        "summary growth size",
    )
    _check_ci(found[:3], _triple(relu, "erf_size_slope"), "summary: growth size slope")
    _check(found[3], float(slopes["null model: sqrt_box"]["erf_size_slope"]), "summary: √box")
    found = _find(
        rf"\*\*{NUMBER}\*\* \[{NUMBER}, {NUMBER}\]",
        _summary_row("growth, random + ReLU, ERF/TRF"),
        "summary growth ERF/TRF",
    )
    _check_ci(found, _triple(relu, "erf_trf_ratio_slope"), "summary: growth ERF/TRF slope")
    uniform = slopes["uniform/none/ours"]
    size, ratio = _find(
        rf"\| {NUMBER} / {NUMBER} \(exact box", _summary_row("growth, uniform"), "summary uniform"
    )
    _check(size, float(uniform["erf_size_slope"]), "summary: uniform size slope")
    _check(ratio, float(uniform["erf_trf_ratio_slope"]), "summary: uniform ERF/TRF slope")
    depth = _slopes(LUO / "depth_sweep" / "slopes.json")["random", "relu"]
    size, ratio = _find(
        rf"\| {NUMBER} / {NUMBER} \(one draw", _summary_row("depth sweep"), "summary depth sweep"
    )
    _check(size, depth["erf_size_slope"], "summary: depth sweep size slope")
    _check(ratio, depth["erf_trf_ratio_slope"], "summary: depth sweep ERF/TRF slope")


def test_the_summary_table_quotes_the_size_studies():
    rows = {r["label"]: r for r in _csv(LUO / "subsample_dilation" / "summary.csv")}
    found = _find(
        rf"ERF {CI} → {CI} \(subsample\), {CI} \(dilation\)",
        _summary_row("subsampling and dilation"),
        "summary subsample",
    )
    for i, label in enumerate(("baseline", "subsample", "dilation")):
        values = _triple(rows[label], "erf_size", "_ci_low", "_ci_high")
        _check_ci(found[3 * i : 3 * i + 3], values, f"summary: {label} ERF size")
    rows = {r["label"]: r for r in _csv(LUO / "dropout_skip" / "summary.csv")}
    found = _find(
        rf"ERF {CI} \(plain\) vs {NUMBER} \(eval\) vs {CI} px \(masks\); R² {NUMBER} each",
        _summary_row("dropout"),
        "summary dropout",
    )
    size = lambda label: _triple(rows[label], "erf_size", "_ci_low", "_ci_high")  # noqa: E731
    _check_ci(found[:3], size("plain"), "summary: plain ERF size")
    _check(found[3], float(rows["dropout_eval"]["erf_size"]), "summary: dropout_eval ERF size")
    _check_ci(found[4:7], size("dropout_mask"), "summary: dropout_mask ERF size")
    for label in ("plain", "dropout_eval", "dropout_mask"):
        _check(found[7], float(rows[label]["fit_r2"]), f"summary: {label} fit R²")
    row = _summary_row("skip connections")
    found = _find(rf"{CI} px \(residual\) vs {CI} px \(plain\), same TRF {NUMBER}", row, "skip")
    _check_ci(found[:3], size("residual"), "summary: residual ERF size")
    _check_ci(found[3:6], size("plain"), "summary: plain ERF size")
    _check(found[6], float(rows["residual"]["trf_size"]), "summary: residual TRF")
    alpha2, plain = _find(rf"\({NUMBER} vs {NUMBER} px\)", row, "summary skip_scale α = 2")
    scale = _shape(LUO / "skip_scale" / "skip_scale.csv", "batch_norm", "branch_scale")
    _check(alpha2, float(scale["False", "2"]["erf_size"]), "summary: skip_scale α = 2")
    control = json.loads(_text(LUO / "skip_scale" / "plain_control.json"))["jobs"]
    _check(plain, next(j for j in control if not j["batch_norm"])["erf_size"], "summary: plain")
    ratios = json.loads(_text(LUO / "init_sweep" / "per_draw.json"))["rim_heavy_over_random"]
    found = _find(
        rf"\+{NUMBER} % \[{NUMBER}, {NUMBER}\] \(linear\), \+{NUMBER} % \[{NUMBER}, "
        rf"{NUMBER}\] \(ReLU\)",
        _summary_row("rim-heavy init enlarges"),
        "rim-heavy",
    )
    for i, act in enumerate(("none", "relu")):
        values = [100 * (ratios[act][k] - 1) for k in ("mean", "low", "high")]
        _check_ci(found[3 * i : 3 * i + 3], values, f"summary: rim-heavy / random, {act} (%)")


def test_the_summary_table_quotes_the_relu_gap_against_runs():
    row = _summary_row("ReLU makes the ERF less Gaussian")
    settings = _shape(
        LUO / "activation_settings" / "shape.csv", "depth", "channels", "protocol", "activation"
    )
    diffs = _differences(
        LUO / "activation_settings" / "r2_difference.json", "depth", "channels", "protocol"
    )
    found = _find(
        rf"R² {NUMBER} \(none\) vs \*\*{NUMBER} \(ReLU\)\*\*, paired difference {CI}",
        row,
        "summary ReLU",
    )
    _check(found[0], float(settings["20", "8", "luo", "none"]["fit_r2"]), "summary: R² none")
    _check(found[1], float(settings["20", "8", "luo", "relu"]["fit_r2"]), "summary: R² relu")
    _check_ci(found[2:], _diff(diffs["20", "8", "luo"]), "summary: paired difference")
    gaps = json.loads(_text(LUO / "activation_settings" / "gap_vs_runs.json"))
    found = _find(
        rf"{SIGNED} at 64 runs, {SIGNED} at 256, {SIGNED} at 1,024, {SIGNED} at 4,096",
        row,
        "summary gap against runs",
    )
    expected = [b["gap_mean"] for b in gaps["blocks"]] + [gaps["nested"][-1]["gap"]]
    for quoted, value, n in zip(found, expected, (64, 256, 1024, 4096)):
        _check(quoted, value, f"summary: gap at {n} runs")


def test_the_summary_table_quotes_the_training_shifts():
    table = {
        (r["setting"], r["quantity"], r["phase"]): r
        for r in _csv(LUO / "trained_vs_untrained" / "shift_growth.csv")
    }
    value = lambda *key: tuple(float(table[key][k]) for k in ("mean", "low", "high"))  # noqa: E731
    found = _find(
        rf"moment σ {CI} px, Luo size {NUMBER} → {NUMBER} px",
        _summary_row("CIFAR-10"),
        "summary CIFAR-10",
    )
    _check_ci(found[:3], value("classification", "moment_sigma_own", "change"), "σ change")
    _check(found[3], value("classification", "luo_size_unit", "before")[0], "Luo size before")
    _check(found[4], value("classification", "luo_size_unit", "after")[0], "Luo size after")
    found = _find(
        rf"COM moves {CI} px off the unit; moment σ about its own centre {CI} px",
        _summary_row("CamVid"),
        "summary CamVid",
    )
    _check_ci(found[:3], value("segmentation", "shift_norm", "change"), "CamVid shift change")
    _check_ci(found[3:], value("segmentation", "moment_sigma_own", "change"), "CamVid σ change")


def _null_gap(path: Path, group: dict, model: str, sizes: list[float]) -> float:
    """The largest |size / null size − 1| over the depths of ``group``."""
    null = next(m for m in json.loads(_text(path))["null_models"] if m["model"] == model)
    ref = dict(zip(null["depths"], null["erf_size"]))
    return max(abs(s / ref[x] - 1) for x, s in zip(group["xs"], sizes))


def test_the_null_model_gaps_in_the_text_are_the_growth_files():
    text = re.sub(r"\s+", " ", _text(LUO / "README.md"))
    path = LUO / "growth" / "growth.json"
    groups = {
        (g["init"], g["activation"]): g
        for g in json.loads(_text(path))["groups"]
        if g.get("protocol", "ours") == "ours"  # the text quotes our protocol's sizes
    }
    random = groups["random", "none"]
    gap, size, null = _find(
        rf"random / none mean sizes are within {NUMBER} % of √box at "
        rf"every depth \(depth 80: {NUMBER} vs {NUMBER} px\)",
        text,
        "√box",
    )
    _check(gap, 100 * _null_gap(path, random, "sqrt_box", random["erf_size"]), "√box gap (%)")
    _check(size, random["erf_size"][random["xs"].index(80)], "random / none size at depth 80")
    sqrt_box = next(m for m in json.loads(_text(path))["null_models"] if m["model"] == "sqrt_box")
    _check(null, sqrt_box["erf_size"][sqrt_box["depths"].index(80)], "√box size at depth 80")
    path = LUO / "growth_reductions" / "growth.json"
    square = next(g for g in json.loads(_text(path))["groups"] if g["reduce"] == "square")
    mean, pooled = _find(
        rf"mean per-draw sizes within {NUMBER} % of box at every depth, the "
        rf"pooled map's within {NUMBER} %",
        text,
        "square vs box",
    )
    _check(mean, 100 * _null_gap(path, square, "box", square["erf_size"]), "square vs box (%)")
    gap = _null_gap(path, square, "box", square["pooled"]["erf_size"])
    _check(pooled, 100 * gap, "square pooled vs box (%)")


def test_the_luo_threshold_is_placed_at_its_gaussian_contour():
    """4.55 % of a Gaussian's peak lies at √(−2 ln 0.0455) σ, which the write-ups quote."""
    sigmas = math.sqrt(-2 * math.log(1 - LUO_FRACTION))
    for path in (DOCS / "concepts.md", LUO / "README.md"):
        text = re.sub(r"\s+", " ", _text(path))
        quoted, at_two = _find(
            rf"√\(−2 ln 0.0455\) = {NUMBER} σ[^%]*? 2 σ [^%]*?{NUMBER} %",
            text,
            f"{path.name}: threshold",
        )
        _check(quoted, sigmas, f"{path.name}: the 4.55 % contour in σ")
        _check(at_two, 100 * math.exp(-2), f"{path.name}: a Gaussian at 2 σ (% of its peak)")


BENCH = ROOT / "experiments" / "benchmarks"


def _table_rows(text: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header line starts with ``header``, as cells
    with bold markers and "×" stripped."""
    lines = text[text.index(header) :].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append(
            [c.strip().replace("*", "").replace("×", "") for c in line.strip("|").split("|")]
        )
    return rows


@pytest.mark.parametrize(
    "folder, header, columns",
    [
        (
            "cpu_resnet18_224",
            "## CPU: ResNet-18 at 224 px",
            ("images_per_s", "vs_per_image", "vs_floor"),
        ),
        ("cpu_resnet18_224_1thread", "Same with 1 thread", ("images_per_s", "vs_per_image")),
    ],
)
def test_the_benchmark_tables_are_their_benchmark_files(folder, header, columns):
    section = _text(BENCH / "README.md")
    section = section[section.index(header) :]
    rows = _table_rows(section, "| method | images/s")
    by_method = {r["method"]: r for r in _csv(BENCH / folder / "benchmark.csv")}
    checked = 0
    for cells in rows:
        method = cells[0].split(" (")[0]
        if method not in by_method or "/" in method:
            continue
        for quoted, key in zip(cells[1 : 1 + len(columns)], columns):
            if quoted:
                _check(quoted.split()[0], float(by_method[method][key]), f"{folder} {method} {key}")
                checked += 1
    assert checked >= 10, f"{folder}: only {checked} numbers checked"


def test_the_depth_sweep_input_spread_is_its_seed_file():
    text = re.sub(r"\s+", " ", _text(ROOT / "experiments" / "depth_sweep" / "README.md"))
    groups = json.loads(_text(ROOT / "experiments" / "depth_sweep" / "slopes_by_input_seed.json"))
    found = _find(
        rf"standard deviation of {NUMBER} \(random, {NUMBER}–{NUMBER}\) and {NUMBER} "
        rf"\(uniform, {NUMBER}–{NUMBER}\)",
        text,
        "depth sweep input spread",
    )
    for quoted, (group, key) in zip(
        found,
        [("random/relu", k) for k in ("sd", "min", "max")]
        + [("uniform/relu", k) for k in ("sd", "min", "max")],
    ):
        _check(quoted, groups["groups"][group][key], f"{group} {key}")
    assert groups["groups"]["random/none"]["sd"] == 0 == groups["groups"]["uniform/none"]["sd"]


# The README's Python examples are seeded and quote what they print.

EXAMPLE = re.compile(r"```python\n(.*?)```\n\n[^\n`]*\bprints\b[^\n]*\n\n```text\n(.*?)```", re.S)


def _readme_examples() -> list[tuple[str, str]]:
    """(code, quoted output) of each README ``python`` block followed by a "prints" ``text``
    block."""
    return EXAMPLE.findall(_text(ROOT / "README.md"))


def test_the_readme_quotes_the_output_of_its_seeded_examples():
    examples = _readme_examples()
    assert len(examples) == 2, [code.splitlines()[:1] for code, _ in examples]
    for code, output in examples:
        assert "torch.manual_seed(0)" in code and output.strip(), code


@pytest.mark.slow  # a ConvStack and a ResNet-18 probed on CPU: ~15 s on 2 shared cores
@pytest.mark.parametrize("index", [0, 1])
def test_a_seeded_readme_example_prints_what_the_readme_says(index):
    from helpers.cli import run_command

    code, output = _readme_examples()[index]
    proc = run_command([sys.executable, "-c", code])  # from the repository root: this erf
    assert proc.stdout == output, f"README example {index} printed:\n{proc.stdout}"


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's ``toc`` (mkdocs) and GitHub give a plain heading."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def test_every_link_of_the_readme_reaches_a_file_and_heading():
    """The README is the front door to docs/ and experiments/: its relative links name files of
    the repository, and its anchors name headings of the page they point into."""
    links = re.findall(r"\]\(([^)\s]+)\)", _text(ROOT / "README.md"))
    local = [link for link in links if "://" not in link]
    assert len(local) >= 20, local
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"README links to {link}: no such file"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", _text(target), re.M)
            assert anchor in {_slug(h) for h in headings}, f"README: no heading #{anchor} in {path}"


ATLAS = ROOT / "experiments" / "atlas_padding"
ATLAS_MODELS = {"Luo stack": "luo", "ResNet-18 layer1": "resnet18"}
ATLAS_KEYS = ("erf_size", "erf_trf_ratio", "shift_row", "shift_col")


def test_the_atlas_padding_table_is_its_padding_file():
    rows = _table_rows(_text(ATLAS / "README.md"), "| model | padding | unit |")
    found = {(r["model"], r["padding"], r["unit"]): r for r in _csv(ATLAS / "padding.csv")}
    assert len(rows) == len(found) == 18
    for cells in rows:
        row = found[(ATLAS_MODELS[cells[0]], cells[1], cells[2].split(" (")[0])]
        what = f"atlas {' '.join(cells[:3])}"
        for cell, key in zip(cells[3:7], ATLAS_KEYS):
            quoted = re.fullmatch(rf"{NUMBER} \[{NUMBER}, {NUMBER}\]", cell.replace("-", "−"))
            assert quoted, f"{what} {key}: {cell!r}"
            for q, suffix in zip(quoted.groups(), ("", "_ci_low", "_ci_high")):
                _check(q, float(row[key + suffix]), f"{what} {key}{suffix}")
        _check(cells[7], float(row["mass_outside_trf"]), f"{what} mass outside")
        assert int(cells[8]) == int(row["trf_pixels"]), what


def test_the_atlas_timings_in_the_text_are_its_timing_file():
    text = _text(ATLAS / "README.md")
    timing = {r["run"]: r for r in _csv(ATLAS / "timing.csv")}
    shared, alone = _find(rf"stack took {NUMBER} s shared against {NUMBER} s", text, "timing")
    _check(shared, float(timing["luo_zeros"]["wall_time_s"]), "shared wall time")
    _check(alone, float(timing["luo_zeros_unshared"]["wall_time_s"]), "unshared wall time")
    assert "576 units take 289 passes" in text and timing["luo_zeros"]["passes"] == "289"
    assert "256 units take 121 passes" in text and timing["resnet18_zeros"]["passes"] == "121"
