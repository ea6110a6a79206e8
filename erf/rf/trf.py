"""Results of the theoretical receptive field (TRF): ``LayerRF`` (one layer of a chain) and
``TheoreticalRF`` (one output), shared by the closed form (erf.rf.theory) and the graph analysis
(erf.rf.graph). All pairs are ``(rows, cols)`` in input pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any

Pair = tuple[int, int]

LOCAL_CONVENTION = (
    "local box: per-sample scalars computed from the whole map (squeeze-excitation gates, "
    "GroupNorm/InstanceNorm/LayerNorm statistics) are held constant; the unit depends on every "
    "input pixel through them"
)
Stride = tuple["int | Fraction", "int | Fraction"]


@dataclass(frozen=True)
class LayerRF:
    """One layer of the chain and the cumulative TRF after it (pairs are ``(rows, cols)``).

    ``kernel`` is the effective kernel ``d(k-1)+1``; ``padding`` the layer's left/top padding;
    ``size``/``eff_stride``/``eff_padding`` are r, S, P from the input up to this layer's output;
    ``out_shape`` is its output ``(h, w)``, or ``None`` when the input shape is unknown.
    """

    name: str
    kernel: Pair
    stride: Pair
    padding: Pair
    size: Pair
    eff_stride: Pair
    eff_padding: Pair
    out_shape: Pair | None = None


@dataclass(frozen=True)
class TheoreticalRF:
    """TRF of one output: ``size`` r0, ``stride`` S0, ``padding`` P0 per axis ``(rows, cols)``
    (graph results of sequences and volumes: one entry per axis, ``(L,)`` or ``(D, H, W)``).

    Chains (closed form) fill ``layers``. Graph analysis (erf.rf.graph) leaves ``layers`` empty and
    adds: ``size`` = the span of the centre unit ``(h // 2, w // 2)``; ``stride`` =
    ``(start(u + q) - start(u)) / q`` at the centre, with q the denominator of the nominal stride
    (an ``int``, or a ``fractions.Fraction`` after upsampling / transposed convs, where units
    alternate between spans); ``padding`` = ``-start(unit 0)``.

    Extra fields: ``is_global`` (every output unit sees the whole input: adaptive pooling to 1,
    spatial means, flatten + Linear; then ``size`` is the input ``(H, W)``, ``stride`` (0, 0) and
    ``padding`` (0, 0)); ``global_context`` (the local TRF is exact but a global path modulates
    it: squeeze-excitation gates, i.e. per-channel scalars computed from the whole map, or
    normalisation statistics over the spatial dims); ``path_sizes`` (``((rows, cols), number of
    input->target paths with that span)``, sorted; max = the TRF when branches are aligned);
    ``min_path``/``max_path`` (one example path, fx node names from input to target); ``notes``;
    ``target`` (fx node name); ``graph`` (the ``erf.rf.graph.GraphRF`` it came from, used by
    ``interval`` and ``at``).

    Provenance: ``source`` is "closed_form" (a chain), "graph" (the torch.fx analysis),
    "measured_support" (``erf.probe.support``: the input pixels where the gradient of the probed
    unit was nonzero, a lower bound of the TRF) or "exact" (built by hand); ``global_from``
    names the first module (or fx node) whose output is already global, when known.

    ``convention`` says what the box counts as "read" when that is a choice: empty when every
    dependence is in the box; ``LOCAL_CONVENTION`` when per-sample scalars computed from the whole
    map (gates, normalisation statistics) are held constant (``global_context`` is then set).

    ``varies_by_unit``: no single (size, stride, padding) describes every unit (misaligned
    branches such as U-Net merges half a pixel apart, adaptive pooling that does not divide,
    fractional resizing, spatial concatenation, clamped borders); then ``size`` is the centre
    unit's span, ``size_range`` ``((min, max) rows, (min, max) cols)`` over all units, and
    ``interval(unit)`` each unit's exact box (graph results fill ``size_range`` always).

    A measured record knows one unit only: ``unit`` (row, col) is the probed unit and ``box``
    its measured inclusive input box ``((r0, r1), (c0, c1))``; ``size`` is the box's span,
    ``stride`` and ``padding`` are unknown and set to (0, 0) (as for global TRFs), and
    ``interval`` returns ``box`` for ``unit`` and raises ValueError for any other unit.
    """

    size: Pair
    stride: Stride
    padding: Pair
    layers: tuple[LayerRF, ...] = ()
    input_shape: Pair | None = None
    out_shape: Pair | None = None
    is_global: bool = False
    global_context: bool = False
    path_sizes: tuple[tuple[Pair, int], ...] = ()
    notes: tuple[str, ...] = ()
    target: str | None = None
    min_path: tuple[str, ...] = ()
    max_path: tuple[str, ...] = ()
    graph: Any = field(default=None, repr=False, compare=False)
    source: str = "exact"
    global_from: str | None = None
    box: tuple[Pair, Pair] | None = None
    unit: Pair | str | None = None  # a prefix token is "prefix:K"
    convention: str = ""
    varies_by_unit: bool = False
    size_range: tuple[Pair, Pair] | None = None

    def interval(self, unit: Pair, clipped: bool = False) -> tuple[Pair, Pair]:
        """Inclusive input span ``((r_start, r_end), (c_start, c_end))`` seen by output ``unit``.

        ``unit`` is ``(row, col)`` in the output map. Unclipped, it may extend past the input;
        ``clipped=True`` clips to ``[0, H-1] x [0, W-1]`` (needs ``input_shape``). Graph results
        back-propagate the unit exactly (spans may vary between units after upsampling) and clip
        every intermediate map: the exact bounding box of the input pixels the unit reads.
        A measured support (``box`` set) is only valid for its probed ``unit``: it returns that
        box (already inside the input) and raises ValueError for other units.
        """
        if self.box is not None:
            if self.unit is not None and _unit_key(unit) != _unit_key(self.unit):
                raise ValueError(
                    f"this TRF is a measured support of unit {_unit_key(self.unit)} only; "
                    f"unit {_unit_key(unit)} was not measured"
                )
            return self.box
        if self.graph is not None and self.target is not None:
            return self.graph.unit_interval(self.target, unit, clipped=clipped)
        spans = []
        for ax in range(len(self.size)):  # (rows, cols); (t,) or (d, h, w) by hand
            start = -self.padding[ax] + unit[ax] * self.stride[ax]
            spans.append((start, start + self.size[ax] - 1))
        if clipped:
            if self.input_shape is None:
                raise ValueError("interval(clipped=True) needs input_shape")
            spans = [
                (max(a, 0), min(b, self.input_shape[ax] - 1)) for ax, (a, b) in enumerate(spans)
            ]
        return tuple(spans)

    @property
    def center_offset(self) -> tuple[float, float]:
        """Input position of the centre of output unit 0 per axis: ``-P + (r - 1) / 2``; for a
        measured support, the centre of its box (the only unit it knows)."""
        if self.box is not None:
            return tuple((a + b) / 2 for a, b in self.box)
        return tuple(-p + (r - 1) / 2 for p, r in zip(self.padding, self.size))

    @property
    def center_unit(self) -> Pair | None:
        """Centre ``(h // 2, w // 2)`` of the output map, or ``None`` if ``out_shape`` unknown."""
        if self.out_shape is None:
            return None
        return tuple(n // 2 for n in self.out_shape)

    @property
    def min_path_size(self) -> Pair | None:
        """Smallest path span (by area, then rows), or None without path statistics."""
        return min((s for s, _ in self.path_sizes), key=_area_key, default=None)

    @property
    def max_path_size(self) -> Pair | None:
        """Largest path span (by area, then rows): the TRF for aligned graphs."""
        return max((s for s, _ in self.path_sizes), key=_area_key, default=None)

    def at(self, name: str) -> TheoreticalRF:
        """The TRF at layer ``name``: a ``LayerRF.name`` of the chain (e.g. "5"), or for graph
        results any target ``GraphRF.for_target`` accepts (module path or fx node name)."""
        if self.graph is not None:
            return self.graph.for_target(name)
        names = [layer.name for layer in self.layers]
        if name not in names:
            raise ValueError(f"no layer named {name!r} in the chain; layers: {', '.join(names)}")
        i = names.index(name)
        layer = self.layers[i]
        return TheoreticalRF(
            size=layer.size,
            stride=layer.eff_stride,
            padding=layer.eff_padding,
            layers=self.layers[: i + 1],
            input_shape=self.input_shape,
            out_shape=layer.out_shape,
            source=self.source,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists, Fractions floats; ``graph`` is left out)."""

        def plain(v: Any) -> Any:
            if isinstance(v, Fraction):
                return v.numerator if v.denominator == 1 else float(v)
            if isinstance(v, LayerRF):
                return {f.name: plain(getattr(v, f.name)) for f in fields(v)}
            if isinstance(v, (tuple, list)):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        d = {f.name: plain(getattr(self, f.name)) for f in fields(self) if f.name != "graph"}
        d["center_offset"] = list(self.center_offset)
        return d


def _area_key(size: tuple[int, ...]) -> tuple[int, int]:
    return (math.prod(size), size[0])


__all__ = ["LOCAL_CONVENTION", "LayerRF", "Pair", "Stride", "TheoreticalRF"]


def _unit_key(unit: Any) -> Any:
    """A unit as compared: (row, col) as a tuple, a prefix token ("prefix:K") as it is."""
    return unit if isinstance(unit, str) else tuple(unit)
