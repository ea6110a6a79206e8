"""The atlas's interactive page: one self-contained HTML file (no server, no network, no
library), from the per-unit rows and maps.

Left, the output map: one square per unit, the probed ones coloured by their ERF size (grey:
not probed). Hovering a probed unit shows its ERF; clicking it keeps it shown (leaving the
map returns to the kept one). Right, the shown unit's ERF map in input pixels (each map
scaled to its own peak), its TRF box (solid: the part inside the input; the box's full
extent is listed), the unit's centre (+) and the ERF centroid (o), and its numbers with their
intervals. The shown unit is named by the canvas's ``data-unit`` attribute ("row,col").

Maps are embedded as one base64 string of uint8 values (K x H x W, each map / its peak x
255), the rows as JSON in a ``<script type="application/json">`` block ("</" escaped).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

SHOWN = (
    "region", "erf_size", "erf_trf_ratio", "shift_row", "shift_col", "shift_norm",
    "moment_sigma", "trf_rows", "trf_cols", "trf_pixels", "mass_outside_trf", "pass",
    "n_samples",
)  # fmt: skip


def _plain(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else round(float(v), 4)
    if isinstance(v, np.integer):
        return int(v)
    return v


def page_data(
    rows: Sequence[dict[str, Any]], maps: np.ndarray, boxes: Sequence, record: dict[str, Any]
) -> dict[str, Any]:
    """What the page's script reads: the map shapes, one entry per unit (position, numbers,
    intervals, TRF box) and the maps as base64 uint8 (each scaled to its own peak)."""
    maps = np.clip(np.nan_to_num(np.asarray(maps, dtype=np.float64)), 0.0, None)
    peaks = maps.reshape(len(maps), -1).max(1)
    scaled = maps / np.where(peaks > 0, peaks, 1.0)[:, None, None]
    packed = np.round(scaled * 255).astype(np.uint8)
    keys = [*SHOWN, *(k for r in rows[:1] for k in r if k.endswith(("_ci_low", "_ci_high")))]
    units = []
    for r, box in zip(rows, boxes):
        entry = {k: _plain(r.get(k)) for k in keys}
        entry.update(
            row=int(r["unit_row"]),
            col=int(r["unit_col"]),
            centre=[_plain(r["unit_in_input_row"]), _plain(r["unit_in_input_col"])],
            centroid=[_plain(r.get("centroid_row")), _plain(r.get("centroid_col"))],
            box=None if box is None else [[int(a), int(b)] for a, b in box],
        )
        units.append(entry)
    return {
        "map_shape": [int(v) for v in record["map_shape"]],
        "input_shape": [int(v) for v in maps.shape[1:]],
        "units": units,
        "maps": base64.b64encode(packed.tobytes()).decode("ascii"),
    }


STYLE = """
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
#layout { display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }
#units rect.unit { cursor: pointer; stroke: #fff; stroke-width: 0.04; }
#units rect.unit.shown { stroke: #e4572e; stroke-width: 0.14; }
#units rect.empty { fill: #ddd; stroke: #fff; stroke-width: 0.04; }
#erf-map { image-rendering: pixelated; border: 1px solid #999; }
table { border-collapse: collapse; margin-top: 8px; }
td { padding: 2px 8px; border-bottom: 1px solid #eee; }
.note { color: #555; max-width: 60em; }
"""

SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById('atlas-data').textContent);
  const [H, W] = data.input_shape, [h, w] = data.map_shape;
  const raw = atob(data.maps), plane = H * W;
  const canvas = document.getElementById('erf-map'), ctx = canvas.getContext('2d');
  const scale = canvas.width / W;
  const off = document.createElement('canvas'); off.width = W; off.height = H;
  const octx = off.getContext('2d');
  const stops = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];
  function colour(v) {
    const t = v / 255 * (stops.length - 1), i = Math.min(Math.floor(t), stops.length - 2);
    const f = t - i, a = stops[i], b = stops[i + 1];
    return [0, 1, 2].map(j => Math.round(a[j] + f * (b[j] - a[j])));
  }
  const cells = Array.from(document.querySelectorAll('#units rect.unit'));
  const sizes = data.units.map(u => u.erf_size).filter(v => v !== null);
  const lo = Math.min(...sizes), hi = Math.max(...sizes);
  document.getElementById('legend').textContent = sizes.length
    ? `colour: ERF size, ${lo.toFixed(1)} px (dark) to ${hi.toFixed(1)} px (light)` : '';
  cells.forEach(el => {
    const u = data.units[+el.dataset.index];
    const v = u.erf_size === null || hi <= lo ? 0 : (u.erf_size - lo) / (hi - lo);
    const c = colour(v * 255);
    el.setAttribute('fill', `rgb(${c[0]},${c[1]},${c[2]})`);
  });
  function fmt(v) {
    if (v === null || v === undefined) return 'n/a';
    return Number.isInteger(v) ? String(v) : v.toFixed(2);
  }
  function withCi(u, k) {
    const lo = u[k + '_ci_low'], hi = u[k + '_ci_high'];
    return fmt(u[k]) + (lo === null || lo === undefined ? '' : ` [${fmt(lo)}, ${fmt(hi)}]`);
  }
  function table(u) {
    const b = u.box;
    const box = b ? `rows ${b[0][0]}..${b[0][1]}, cols ${b[1][0]}..${b[1][1]}` : 'n/a';
    const lines = [
      ['unit (row, col)', `(${u.row}, ${u.col}), ${u.region}`],
      ['ERF size, Luo (px) [95 % interval]', withCi(u, 'erf_size')],
      ['ERF size / √TRF pixels', withCi(u, 'erf_trf_ratio')],
      ['centre shift, rows (px)', withCi(u, 'shift_row')],
      ['centre shift, cols (px)', withCi(u, 'shift_col')],
      ['|centre shift| (px)', withCi(u, 'shift_norm')],
      ['moment sigma about the centroid (px)', withCi(u, 'moment_sigma')],
      ['TRF box (unclipped, input px)', box],
      ['TRF pixels in the input', fmt(u.trf_pixels)],
      ['ERF mass outside the TRF box', fmt(u.mass_outside_trf)],
      ['backward pass', fmt(u.pass)],
    ];
    document.getElementById('numbers').innerHTML =
      lines.map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join('');
  }
  function show(k) {
    const u = data.units[k], img = octx.createImageData(W, H);
    for (let p = 0; p < plane; p++) {
      const c = colour(raw.charCodeAt(k * plane + p));
      img.data[4 * p] = c[0]; img.data[4 * p + 1] = c[1]; img.data[4 * p + 2] = c[2];
      img.data[4 * p + 3] = 255;
    }
    octx.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
    if (u.box) {
      const r0 = Math.max(u.box[0][0], 0), r1 = Math.min(u.box[0][1], H - 1);
      const c0 = Math.max(u.box[1][0], 0), c1 = Math.min(u.box[1][1], W - 1);
      ctx.strokeStyle = '#4fc3f7'; ctx.lineWidth = 2;
      ctx.strokeRect(c0 * scale, r0 * scale, (c1 - c0 + 1) * scale, (r1 - r0 + 1) * scale);
    }
    const mark = (p, draw) => {
      if (p[0] !== null) draw((p[1] + 0.5) * scale, (p[0] + 0.5) * scale);
    };
    ctx.strokeStyle = '#fff'; ctx.lineWidth = 2;
    mark(u.centre, (x, y) => { ctx.beginPath(); ctx.moveTo(x - 6, y); ctx.lineTo(x + 6, y);
      ctx.moveTo(x, y - 6); ctx.lineTo(x, y + 6); ctx.stroke(); });
    mark(u.centroid, (x, y) => {
      ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI); ctx.stroke();
    });
    canvas.dataset.unit = `${u.row},${u.col}`;
    document.getElementById('shown').textContent = `unit (${u.row}, ${u.col})`;
    cells.forEach(el => el.classList.toggle('shown', +el.dataset.index === k));
    table(u);
  }
  let kept = +document.getElementById('units').dataset.first;
  cells.forEach(el => {
    const k = +el.dataset.index;
    el.addEventListener('mouseenter', () => show(k));
    el.addEventListener('click', () => { kept = k; show(k); });
  });
  document.getElementById('units').addEventListener('mouseleave', () => show(kept));
  show(kept);
})();
"""


def _unit_svg(data: dict[str, Any], first: int) -> str:
    """The output map as SVG squares, one per unit (``rect.unit`` probed, ``rect.empty`` not)."""
    h, w = data["map_shape"]
    cell = max(6, min(40, 360 // max(h, w)))
    index = {(u["row"], u["col"]): k for k, u in enumerate(data["units"])}
    rects = []
    for r in range(h):
        for c in range(w):
            k = index.get((r, c))
            if k is None:
                rects.append(f'<rect class="empty" x="{c}" y="{r}" width="1" height="1"/>')
            else:
                rects.append(
                    f'<rect class="unit" id="unit-{r}-{c}" data-index="{k}" data-row="{r}" '
                    f'data-col="{c}" x="{c}" y="{r}" width="1" height="1"/>'
                )
    return (
        f'<svg id="units" data-first="{first}" viewBox="0 0 {w} {h}" width="{w * cell}" '
        f'height="{h * cell}">{"".join(rects)}</svg>'
    )


def atlas_html(
    rows: Sequence[dict[str, Any]],
    maps: np.ndarray,
    boxes: Sequence,
    record: dict[str, Any],
    title: str,
) -> str:
    """The page (module docstring) as one HTML string; it first shows the centre unit, or
    the first one when the centre was not probed."""
    data = page_data(rows, maps, boxes, record)
    h, w = data["map_shape"]
    first = next(
        (k for k, u in enumerate(data["units"]) if (u["row"], u["col"]) == (h // 2, w // 2)), 0
    )
    big, side = max(data["input_shape"]), 420
    scale = max(1, side // big)
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    height, width = (v * scale for v in data["input_shape"])
    note = (
        "Hover an output unit on the left to see its ERF; click it to keep it shown. The map "
        "is scaled to its own peak. Blue: the TRF box inside the input; +: the unit's centre "
        "(the centre of its TRF box); o: the ERF centroid. Intervals are 95 % over input groups."
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="note">{html.escape(note)}</p>
<div id="layout">
<div><h2>output units ({h} x {w})</h2>{_unit_svg(data, first)}<p id="legend" class="note"></p></div>
<div><h2 id="shown"></h2>
<canvas id="erf-map" width="{width}" height="{height}" data-unit=""></canvas>
<table id="numbers"></table></div>
</div>
<script type="application/json" id="atlas-data">{payload}</script>
<script>{SCRIPT}</script>
</body></html>
"""


__all__ = ["SHOWN", "atlas_html", "page_data"]
