"""The report page of a sweep folder, or of one run's folder: ``report.html``, one
self-contained file (every figure embedded as a base64 data URI, SVG too: an SVG shown as an
image runs no script, inlined markup would), and ``report.md`` beside it with the same content
(figures as relative image links).

What it shows, all read from the folder's files: the sweep's figures, ``summary.csv`` as a
table (key columns first; ``<metric>_ci_low``/``_ci_high`` shown as ``value [low, high]``),
the settings (the command-line overrides, ``sweep.json``, what every job shares, one job's
``.hydra/config.yaml``), provenance (versions, machine, device, git commit, command), every
job's warnings and the jobs without a ``metrics.json`` (failed or unfinished), and relative
links to each job's folder and files (percent-encoded and starting with ``./``: a file named
``javascript:...`` is a file, not a script). Written at the end of every sweep
(``erf.app.callbacks``) and rebuilt by ``python -m erf.report DIR``.

The page carries one small inline script: when it has loaded, it marks every image that did
not decode (a red note under it) and records ``data-images-decoded="K/N"`` and
``data-script-errors`` on ``<body>``, which the browser test reads.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from erf.io.store import CorruptJob, read_job_metrics, write_text
from erf.io.tables import CI_HIGH, CI_LOW, is_number, key_columns, paper_cells

REPORT_HTML, REPORT_MD = "report.html", "report.md"
FIGURE_SUFFIXES = (".png", ".svg")
FIRST_FIGURES = ("erf_grid", "trf_vs_erf", "before_after", "cross_arch", "growth", "shape")
PROVENANCE_KEYS = (
    "erf_version",
    "git_commit",
    "torch_version",
    "python",
    "machine",
    "device",
    "dtype",
)
_SKIP = {REPORT_HTML, REPORT_MD}


def _parse(text: str) -> Any:
    """A summary.csv cell back to a value: "" None, True/False, int, float, else the text."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_summary(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of a ``summary.csv`` (cells parsed back to numbers, booleans and
    None for empty cells)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        raw = list(reader)
        columns = list(reader.fieldnames or [])
    rows = [{k: _parse(v) for k, v in r.items()} for r in raw]
    for c in columns:  # a column with a float in it is a float column ("5" next to "8.66")
        if any(isinstance(r.get(c), float) for r in rows):
            for r in rows:
                if isinstance(r.get(c), int) and not isinstance(r.get(c), bool):
                    r[c] = float(r[c])
    return columns, rows


def _overrides(job_dir: Path) -> list[str]:
    """The job's Hydra overrides (``.hydra/overrides.yaml``, one ``- key=value`` a line)."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    return [ln[2:].strip() for ln in path.read_text().splitlines() if ln.startswith("- ")]


def _warnings(metrics: Mapping[str, Any]) -> list[str]:
    """A job's ``warnings`` and ``probe_warnings``, also those of its nested results (a
    training job's ``erf_init`` / ``erf_trained``), each once, in order."""
    found: list[str] = []
    for source in (metrics, *(v for v in metrics.values() if isinstance(v, Mapping))):
        for key in ("warnings", "probe_warnings"):
            for w in source.get(key) or []:
                if str(w) not in found:
                    found.append(str(w))
    return found


def _log_tail(job_dir: Path, lines: int = 3) -> list[str]:
    logs = sorted(job_dir.glob("*.log"))
    if not logs:
        return []
    return [ln for ln in logs[0].read_text(errors="replace").splitlines() if ln.strip()][-lines:]


def _files(folder: Path, base: Path) -> list[dict[str, Any]]:
    """The visible files of ``folder`` (no dot files, not the report itself): name, path
    relative to ``base``, size in bytes."""
    return [
        {"name": p.name, "href": p.relative_to(base).as_posix(), "bytes": p.stat().st_size}
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.name not in _SKIP
    ]


def _job(job_dir: Path, base: Path) -> dict[str, Any]:
    """One job folder: status, warnings, overrides, files, figures, provenance."""
    entry: dict[str, Any] = {
        "name": job_dir.name if job_dir != base else ".",
        "href": job_dir.relative_to(base).as_posix() + "/" if job_dir != base else "./",
        "overrides": _overrides(job_dir),
        "files": _files(job_dir, base),
        "metrics": {},
        "warnings": [],
    }
    entry["figures"] = (
        [  # a single run's figures are the page's own
            f["href"] for f in entry["files"] if f["name"].endswith(FIGURE_SUFFIXES)
        ]
        if job_dir != base
        else []
    )
    if not (job_dir / "metrics.json").is_file():
        entry["status"] = "no metrics.json: failed or not finished"
        entry["warnings"] = _log_tail(job_dir)
        return entry
    try:
        metrics = read_job_metrics(job_dir / "metrics.json")
    except CorruptJob as exc:
        entry["status"] = f"corrupt: {' '.join(str(exc).split())}"
        return entry
    entry["status"] = "done"
    entry["metrics"] = metrics
    entry["warnings"] = _warnings(metrics)
    return entry


def _job_dirs(folder: Path) -> list[Path]:
    """The job folders of a sweep: subfolders with a metrics.json or Hydra's ``.hydra``; the
    folder itself for a single run. Sorted by job number, then name."""
    dirs = [
        p
        for p in folder.iterdir()
        if p.is_dir() and ((p / "metrics.json").is_file() or (p / ".hydra").is_dir())
    ]
    if not dirs and (folder / "metrics.json").is_file():
        return [folder]

    def key(p: Path) -> tuple:
        head = p.name.split("_", 1)[0]
        return (0, int(head), p.name) if head.isdigit() else (1, 0, p.name)

    return sorted(dirs, key=key)


def _figures(folder: Path) -> list[str]:
    """The folder's own figures, the main ones first (``FIRST_FIGURES``), then by name."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in FIGURE_SUFFIXES)

    def rank(name: str) -> tuple:
        stem = Path(name).stem
        return (FIRST_FIGURES.index(stem) if stem in FIRST_FIGURES else len(FIRST_FIGURES), name)

    return sorted(names, key=rank)


def _distinct(values: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for v in values:
        if v is not None and str(v) not in out:
            out.append(str(v))
    return out


# Shown once above the summary table instead of in every row (the interval method: a long
# sentence that is the same for every job of a sweep).
ABOVE_TABLE = ("ci_method",)
MAX_SHOWN_COLUMNS = 12  # a table without key columns shows this many of the others


def _table(folder: Path, jobs: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict]]:
    """The summary table: ``summary.csv`` when there is one, else a row per finished job
    from its metrics (a single run). Columns: job and the key columns (the paper tables'
    ``key_columns``; without any, the first ``MAX_SHOWN_COLUMNS`` others); every column is in
    ``summary.csv``, and ``ABOVE_TABLE`` values are shown once above the table; interval
    bounds are not columns of their own."""
    path = folder / "summary.csv"
    if path.is_file():
        columns, rows = read_summary(path)
    else:
        rows = [{"job": j["name"], **j["metrics"]} for j in jobs if j["metrics"]]
        scalar = [
            k
            for k in (rows[0] if rows else {})
            if isinstance(rows[0][k], (int, float, str, bool, type(None)))
        ]
        columns = scalar
    keys = key_columns(rows, columns)
    rest = [c for c in columns if c not in keys and not c.endswith((CI_LOW, CI_HIGH))]
    rest = [c for c in rest if any(r.get(c) is not None for r in rows)]
    shown = ["job", *[c for c in keys if c != "job"]] if "job" in columns else keys
    if len([c for c in shown if c != "job"]) < 1:
        others = [c for c in rest if c not in shown and c not in ABOVE_TABLE]
        shown = [*shown, *others[:MAX_SHOWN_COLUMNS]]
    return shown, rows


def _above_table(rows: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """The distinct values of each ``ABOVE_TABLE`` column among ``rows`` (empty: none)."""
    return {key: _distinct([r.get(key) for r in rows]) for key in ABOVE_TABLE}


def _shared_settings(jobs: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The overrides every job has (the sweep's fixed settings), key -> value."""
    lists = [set(j["overrides"]) for j in jobs if j["overrides"]]
    if not lists:
        return {}
    common = set.intersection(*lists)
    return dict(o.partition("=")[::2] for o in jobs[0]["overrides"] if o in common)


def gather(folder: str | Path, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain data, read from ``folder``'s files; ``context``
    adds what only the caller knows (``command``: the command line, ``experiment``,
    ``sweeper_params``: the swept values, ``machine``: the machine it ran on)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory")
    context = dict(context or {})
    jobs = [_job(d, folder) for d in _job_dirs(folder)]
    if not jobs:
        raise FileNotFoundError(f"no job folders (*/metrics.json or */.hydra) under {folder}")
    columns, rows = _table(folder, jobs)
    done = [j for j in jobs if j["metrics"]]
    provenance = {
        key: _distinct([(j["metrics"].get("provenance") or {}).get(key) for j in done])
        for key in PROVENANCE_KEYS
    }
    if not provenance["machine"] and context.get("machine"):
        provenance["machine"] = [f"{context['machine']} (where the report was written)"]
    sweep_json = folder / "sweep.json"
    config = next((j for j in done if (folder / j["href"] / ".hydra/config.yaml").is_file()), None)
    return {
        "title": context.get("experiment") or folder.name,
        "folder": folder.name,
        "built": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "figures": _figures(folder),
        "columns": columns,
        "rows": rows,
        "above_table": _above_table(rows),
        "has_summary_csv": (folder / "summary.csv").is_file(),
        "jobs": jobs,
        "command": context.get("command"),
        "sweeper_params": dict(context.get("sweeper_params") or {}),
        "sweep_record": json.loads(sweep_json.read_text()) if sweep_json.is_file() else None,
        "shared_settings": _shared_settings(jobs),
        "config_job": config["name"] if config else None,
        "config_text": (
            (folder / config["href"] / ".hydra/config.yaml").read_text() if config else None
        ),
        "provenance": provenance,
        "wall_time_s": sum(float(j["metrics"].get("wall_time_s") or 0) for j in done),
        "files": _files(folder, folder) if jobs[0]["href"] != "./" else [],
    }


# ---------------------------------------------------------------------------------------
# HTML


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
h1{margin-bottom:0} .sub{color:#666;margin-top:.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto;max-height:70vh}
figure{margin:1em 0} figure img,figure svg{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{color:#555;font-size:13px}
.warn{color:#8a4b00} .bad{color:#b00020;font-weight:bold}
img.thumb{width:220px;height:auto}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:12px}
"""

_SCRIPT = """
(function(){var errors=[];
window.addEventListener('error',function(e){errors.push(String(e.message||e));
document.body.setAttribute('data-script-errors',errors.join(' | '));},true);
window.addEventListener('load',function(){var imgs=document.images,ok=0;
for(var i=0;i<imgs.length;i++){var im=imgs[i];
if(im.complete&&im.naturalWidth>0){ok++;}else{var n=document.createElement('div');
n.className='bad';n.textContent='this image did not load: '+(im.alt||'');
im.parentNode.insertBefore(n,im.nextSibling);}}
document.body.setAttribute('data-images-decoded',ok+'/'+imgs.length);
document.body.setAttribute('data-script-errors',errors.join(' | '));});})();
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _data_uri(path: Path) -> str:
    kind = "svg+xml" if path.suffix == ".svg" else "png"
    return f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _url(href: str) -> str:
    """A link to a file or folder of the report's folder (``href`` relative to it): every
    character a URL gives a meaning percent-encoded (``:``, ``#``, ``?``, spaces) and ``./`` in
    front, so no file name is read as a scheme, a fragment or a query."""
    return "./" + urllib.parse.quote(href.removeprefix("./"))


def _figure_html(folder: Path, href: str, caption: str, thumb: bool = False) -> str:
    link = f'<a href="{_e(_url(href))}">{_e(caption)}</a>'
    cls = ' class="thumb"' if thumb else ""
    body = f'<img{cls} src="{_data_uri(folder / href)}" alt="{_e(href)}">'
    return f"<figure>{body}<figcaption>{link}</figcaption></figure>"


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB" if n >= 1e3 else f"{n} B"


def _table_notes(page: Mapping[str, Any]) -> list[str]:
    """The lines above the summary table: each ``ABOVE_TABLE`` value once, and where every
    column is."""
    notes = [
        f"{key}: {' | '.join(values)}" for key, values in page["above_table"].items() if values
    ]
    if page["has_summary_csv"]:
        notes.append("Key columns only; every column is in summary.csv.")
    return notes


def _summary_html(page: Mapping[str, Any]) -> str:
    columns, rows = page["columns"], page["rows"]
    if not rows:
        return "<p>No finished jobs: no summary table.</p>"
    notes = "".join(f"<p>{_e(n)}</p>" for n in _table_notes(page))
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for r, cells in zip(rows, paper_cells(rows, columns)):
        tds = []
        for c, text in zip(columns, cells):
            if c == "job" and r.get("job") not in (None, "."):
                job_href = _url(str(r["job"]) + "/")
                text_html = f'<a href="{_e(job_href)}">{_e(text)}</a>'
            else:
                text_html = _e(text)
            cls = ' class="num"' if is_number(r.get(c)) else ""
            tds.append(f"<td{cls}>{text_html}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return (
        notes
        + '<div class="scroll"><table><thead><tr>'
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


def _dl(items: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in items)
    return f"<table>{rows}</table>"


def _provenance_items(page: Mapping[str, Any]) -> list[tuple[str, str]]:
    items = []
    for key in PROVENANCE_KEYS:
        values = page["provenance"].get(key) or []
        items.append((key, _e(", ".join(values)) if values else "<i>not recorded</i>"))
    items.append(
        (
            "command",
            f"<code>{_e(page['command'])}</code>" if page["command"] else "<i>not recorded</i>",
        )
    )
    items.append(("probe wall time, all jobs", _e(f"{page['wall_time_s']:.1f} s")))
    items.append(("page built", _e(page["built"])))
    return items


def _shared_label(page: Mapping[str, Any]) -> str:
    return "Overrides" if len(page["jobs"]) == 1 else "Overrides every job has"


def _settings_html(page: Mapping[str, Any]) -> str:
    parts = []
    if page["command"]:
        parts.append(f"<p>Command: <code>{_e(page['command'])}</code></p>")
    if page["sweeper_params"]:
        parts.append("<p>Swept:</p>" + _dl([(k, _e(v)) for k, v in page["sweeper_params"].items()]))
    if page["sweep_record"] is not None:
        text = json.dumps(page["sweep_record"], indent=2)
        parts.append(f'<p><a href="./sweep.json">sweep.json</a>:</p><pre>{_e(text)}</pre>')
    if page["shared_settings"]:
        parts.append(
            f"<p>{_shared_label(page)}:</p>"
            + _dl([(k, _e(v)) for k, v in page["shared_settings"].items()])
        )
    if page["config_text"]:
        href = (
            f"{page['config_job']}/.hydra/config.yaml"
            if page["config_job"] != "."
            else ".hydra/config.yaml"
        )
        parts.append(
            f"<details><summary>Resolved config of job {_e(page['config_job'])} "
            f'(<a href="{_e(_url(href))}">.hydra/config.yaml</a>)</summary>'
            f"<pre>{_e(page['config_text'])}</pre></details>"
        )
    return "".join(parts) or "<p>No settings recorded.</p>"


def _warnings_html(page: Mapping[str, Any]) -> str:
    items = []
    for j in page["jobs"]:
        link = f'<a href="{_e(_url(j["href"]))}">{_e(j["name"])}</a>'
        if j["status"] != "done":
            tail = "".join(f"<br><code>{_e(t)}</code>" for t in j["warnings"])
            items.append(f'<li class="bad">{link}: {_e(j["status"])}{tail}</li>')
        else:
            items += [f'<li class="warn">{link}: {_e(w)}</li>' for w in j["warnings"]]
    return f"<ul>{''.join(items)}</ul>" if items else "<p>No warnings; every job finished.</p>"


def _jobs_html(folder: Path, page: Mapping[str, Any]) -> str:
    rows = []
    for j in page["jobs"]:
        figures = "".join(
            _figure_html(folder, href, Path(href).name, thumb=True) for href in j["figures"]
        )
        files = "<br>".join(
            f'<a href="{_e(_url(f["href"]))}">{_e(f["name"])}</a> ({_size(f["bytes"])})'
            for f in j["files"]
        )
        overrides = "<br>".join(_e(o) for o in j["overrides"])
        status = (
            _e(j["status"])
            if j["status"] == "done"
            else f'<span class="bad">{_e(j["status"])}</span>'
        )
        rows.append(
            f'<tr><td><a href="{_e(_url(j["href"]))}">{_e(j["name"])}</a><br>{status}</td>'
            f"<td>{overrides}</td><td>{files}</td><td>{figures}</td></tr>"
        )
    return (
        "<table><thead><tr><th>job</th><th>overrides</th><th>files</th><th>figures</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def report_html(folder: str | Path, page: Mapping[str, Any]) -> str:
    """The page (``gather``'s ``page`` of ``folder``) as one self-contained HTML document."""
    folder = Path(folder)
    figures = "".join(_figure_html(folder, name, name) for name in page["figures"])
    files = ", ".join(f'<a href="{_e(_url(f["href"]))}">{_e(f["name"])}</a>' for f in page["files"])
    n_done = sum(1 for j in page["jobs"] if j["status"] == "done")
    sections = [
        f"<h1>{_e(page['title'])}</h1>",
        f'<p class="sub">{_e(page["folder"])}: {n_done} of {len(page["jobs"])} jobs finished'
        f" &middot; built {_e(page['built'])}</p>",
        f"<p>Files: {files}</p>" if files else "",
        "<h2>Figures</h2>" + (figures or "<p>No figures.</p>"),
        "<h2>Summary</h2>" + _summary_html(page),
        "<h2>Warnings</h2>" + _warnings_html(page),
        "<h2>Settings</h2>" + _settings_html(page),
        "<h2>Provenance</h2>" + _dl(_provenance_items(page)),
        "<h2>Jobs</h2>" + _jobs_html(folder, page),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(page['title'])}: erf report</title>"
        f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head>\n<body>\n"
        + "\n".join(s for s in sections if s)
        + "\n</body></html>\n"
    )


# ---------------------------------------------------------------------------------------
# Markdown


def _md(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _md_link(text: str, href: str) -> str:
    return f"[{_md(text)}](<{_url(href)}>)"


def report_markdown(page: Mapping[str, Any]) -> str:
    """The page as Markdown: the same sections, figures as relative image links."""
    n_done = sum(1 for j in page["jobs"] if j["status"] == "done")
    out = [
        f"# {page['title']}",
        "",
        f"{page['folder']}: {n_done} of {len(page['jobs'])} jobs finished; built {page['built']}",
        "",
    ]
    if page["files"]:
        out += ["Files: " + ", ".join(_md_link(f["name"], f["href"]) for f in page["files"]), ""]
    out += ["## Figures", ""]
    out += [f"![{_md(name)}](<{_url(name)}>)\n" for name in page["figures"]] or ["No figures.", ""]
    out += ["## Summary", ""]
    columns, rows = page["columns"], page["rows"]
    if rows:
        out += [*(_md(n) + "\n" for n in _table_notes(page))]
        out.append("| " + " | ".join(_md(c) for c in columns) + " |")
        out.append("|" + "|".join("---" for _ in columns) + "|")
        for r, cells in zip(rows, paper_cells(rows, columns)):
            shown = [
                _md_link(t, f"{r['job']}/")
                if c == "job" and r.get("job") not in (None, ".")
                else _md(t)
                for c, t in zip(columns, cells)
            ]
            out.append("| " + " | ".join(shown) + " |")
    else:
        out.append("No finished jobs: no summary table.")
    out += ["", "## Warnings", ""]
    warned = False
    for j in page["jobs"]:
        link = _md_link(j["name"], j["href"])
        if j["status"] != "done":
            tail = "".join(f" `{t}`" for t in j["warnings"])
            out.append(f"- **{link}: {_md(j['status'])}**{tail}")
            warned = True
        else:
            out += [f"- {link}: {_md(w)}" for w in j["warnings"]]
            warned = warned or bool(j["warnings"])
    if not warned:
        out.append("No warnings; every job finished.")
    out += ["", "## Settings", ""]
    if page["command"]:
        out += [f"Command: `{page['command']}`", ""]
    for k, v in page["sweeper_params"].items():
        out.append(f"- swept `{k}`: {v}")
    for k, v in page["shared_settings"].items():
        out.append(f"- {_shared_label(page)}: `{k}={v}`")
    if page["sweep_record"] is not None:
        out += ["", "sweep.json:", "", "```json", json.dumps(page["sweep_record"], indent=2), "```"]
    if page["config_text"]:
        out += ["", f"Resolved config of job {page['config_job']}:", "", "```yaml"]
        out += [page["config_text"].rstrip(), "```"]
    out += ["", "## Provenance", ""]
    for key in PROVENANCE_KEYS:
        values = page["provenance"].get(key) or []
        out.append(f"- {key}: {', '.join(values) if values else 'not recorded'}")
    out.append(f"- command: {'`' + page['command'] + '`' if page['command'] else 'not recorded'}")
    out.append(f"- probe wall time, all jobs: {page['wall_time_s']:.1f} s")
    out += ["", "## Jobs", "", "| job | status | overrides | files |", "|---|---|---|---|"]
    for j in page["jobs"]:
        files = ", ".join(_md_link(f["name"], f["href"]) for f in j["files"])
        overrides = ", ".join(f"`{o}`" for o in j["overrides"])
        out.append(
            f"| {_md_link(j['name'], j['href'])} | {_md(j['status'])} | {overrides} | {files} |"
        )
    for j in page["jobs"]:
        out += [f"\n![{_md(j['name'])}: {_md(Path(h).name)}](<{_url(h)}>)" for h in j["figures"]]
    return "\n".join(out) + "\n"


def write_report_page(folder: str | Path, context: Mapping[str, Any] | None = None) -> list[str]:
    """Write ``report.html`` and ``report.md`` into ``folder`` (a sweep's folder or one
    run's), atomically, from its files (``gather``; ``context`` as there). Returns the
    names written."""
    folder = Path(folder)
    page = gather(folder, context)
    write_text(report_html(folder, page), folder / REPORT_HTML)
    write_text(report_markdown(page), folder / REPORT_MD)
    return [REPORT_HTML, REPORT_MD]
