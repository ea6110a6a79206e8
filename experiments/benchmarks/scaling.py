"""How the probe's cost grows with input size (with and without the TRF crop), depth and
sample count, on CPU; and the FLOPs per image of forward-to-target + input-gradient backward.

    python experiments/benchmarks/scaling.py [--threads 1] [--out experiments/benchmarks]
    python experiments/benchmarks/scaling.py --plot-only   # redraw the figure from the CSVs

Writes scaling_size.csv, scaling_depth.csv, scaling_samples.csv, flops.csv and scaling.png.
Times are the best of ``--repeats`` runs (the machine may be shared); inputs are made before
timing. Everything is erf's public API (erf.measure_erf, erf.probe.bench.make_inputs).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torchvision
from matplotlib.ticker import NullFormatter
from torch.utils.flop_counter import FlopCounterMode

from erf.io.figure_style import caption, log_axis, style
from erf.io.plots import save_figure
from erf.probe.bench import agreement, make_inputs
from erf.probe.crop import plan_crop
from erf.probe.measure import forward_to, measure_erf


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def probe_seconds_per_image(model, side, target, n, batch, crop, repeats):
    xs = make_inputs((3, side, side), n)
    parts = [xs[i : i + batch] for i in range(0, n, batch)]
    kw = dict(target=target, n_samples=n, batch_size=batch, device="cpu", progress=False)
    measure_erf(
        model, (3, side, side), inputs=parts[:1], **{**kw, "n_samples": len(parts[0])}, crop=crop
    )  # warm-up
    return (
        best_time(
            lambda: measure_erf(model, (3, side, side), inputs=parts, crop=crop, **kw), repeats
        )
        / n
    )


def flops_per_image(model, side, target) -> tuple[float, float]:
    """(forward-to-target FLOPs, input-gradient backward FLOPs) for one image (meta device)."""
    model = model.to("meta").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.zeros(1, 3, side, side, device="meta", requires_grad=True)
    with FlopCounterMode(display=False) as fwd:
        y = forward_to(model, x, target)
    seed = torch.zeros_like(y)
    with FlopCounterMode(display=False) as bwd:
        torch.autograd.grad(y, x, grad_outputs=seed)
    return float(fwd.get_total_flops()), float(bwd.get_total_flops())


def rel_stderr(result) -> float:
    """Median over pixels of stderr / mean (where the mean is positive)."""
    m = result.map
    return float(np.median(result.stderr[m > 0] / m[m > 0]))


def read(path) -> list[dict]:
    """A CSV written by ``write``, numbers as floats (sides, counts as ints)."""

    def value(v: str):
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return v

    with open(path) as f:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)]


def write(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()})
    print(f"wrote {path}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="experiments/benchmarks")
    ap.add_argument("--plot-only", action="store_true", help="redraw scaling.png from the CSVs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.plot_only:
        tables = [read(out / f"scaling_{k}.csv") for k in ("size", "depth", "samples")]
        figure(*tables, out / "scaling.png")
        return

    # FLOPs by model, side and target (counted, no compute: meta tensors)
    flops = []
    for name in ("resnet18", "resnet50", "resnet101", "resnet152"):
        for side in (224, 1024):
            f, b = flops_per_image(getattr(torchvision.models, name)(), side, "layer4")
            flops.append(
                dict(
                    model=name,
                    side=side,
                    target="layer4",
                    forward_gflop=f / 1e9,
                    input_grad_backward_gflop=b / 1e9,
                    total_gflop=(f + b) / 1e9,
                )
            )
    write(flops, out / "flops.csv")

    # cost vs input side, resnet18 layers, with and without crop (16 images per probe, so
    # the crop's one-off planning, timed alone as plan_s, is spread as it is in real runs)
    model = torchvision.models.resnet18()
    size_rows = []
    for side in (64, 128, 224, 448):
        for target in ("layer1", "layer2", "layer3", "layer4"):
            for crop in ("off", "auto"):
                s = probe_seconds_per_image(model, side, target, 16, 8, crop, args.repeats)
                t0 = time.perf_counter()
                plan = plan_crop(model, (3, side, side), [(target, "center")])
                plan_s = time.perf_counter() - t0 if crop == "auto" else 0.0
                window = plan.rows[1] - plan.rows[0] + 1 if crop == "auto" else side
                size_rows.append(
                    dict(
                        model="resnet18",
                        side=side,
                        target=target,
                        crop=crop,
                        s_per_image=s,
                        images_per_s=1 / s,
                        window=window,
                        plan_s=plan_s,
                    )
                )
                print(size_rows[-1], flush=True)
    write(size_rows, out / "scaling_size.csv")

    # cost vs depth (ResNet family, layer4 at 224)
    depth_rows = []
    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        m = getattr(torchvision.models, name)()
        s = probe_seconds_per_image(m, 224, "layer4", 4, 4, "off", args.repeats)
        f, b = flops_per_image(getattr(torchvision.models, name)(), 224, "layer4")
        depth_rows.append(
            dict(
                model=name,
                side=224,
                target="layer4",
                s_per_image=s,
                images_per_s=1 / s,
                total_gflop=(f + b) / 1e9,
                achieved_gflops=(f + b) / 1e9 / s,
            )
        )
        print(depth_rows[-1], flush=True)
    write(depth_rows, out / "scaling_depth.csv")

    # samples: cost is linear; how close an n-sample map is to a 256-sample one
    xs = make_inputs((3, 112, 112), 256)
    kw = dict(target="layer4", batch_size=16, device="cpu", progress=False)
    t0 = time.perf_counter()
    ref = measure_erf(model, (3, 112, 112), inputs=[xs], n_samples=256, **kw)
    ref_s = time.perf_counter() - t0
    sample_rows = []
    for n in (4, 8, 16, 32, 64, 128):
        t0 = time.perf_counter()
        # first n and the independent last n samples: agreement with the reference, and of
        # two independent n-sample maps with each other
        a = measure_erf(model, (3, 112, 112), inputs=[xs[:n]], n_samples=n, **kw)
        s = time.perf_counter() - t0
        b = measure_erf(model, (3, 112, 112), inputs=[xs[-n:]], n_samples=n, **kw)
        sample_rows.append(
            dict(
                model="resnet18",
                side=112,
                target="layer4",
                n_samples=n,
                seconds=s,
                corr_vs_256=agreement(ref.map, a.map)["map_corr"],
                corr_two_independent=agreement(a.map, b.map)["map_corr"],
                luo_rel_diff_vs_256=agreement(ref.map, a.map)["luo_rel_diff"],
                median_rel_stderr=rel_stderr(a),
            )
        )
        print(sample_rows[-1], flush=True)
    sample_rows.append(
        dict(
            model="resnet18",
            side=112,
            target="layer4",
            n_samples=256,
            seconds=ref_s,
            corr_vs_256=1.0,
            corr_two_independent=float("nan"),
            luo_rel_diff_vs_256=0.0,
            median_rel_stderr=rel_stderr(ref),
        )
    )
    write(sample_rows, out / "scaling_samples.csv")
    figure(size_rows, depth_rows, sample_rows, out / "scaling.png")


def figure(size_rows, depth_rows, sample_rows, path):
    """scaling.png (and the other formats of ``--format``) in erf's figure style: plain log
    ticks, labels beside the points (not on them), legends off the data, a caption."""
    with style():
        fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.9), layout="constrained")
        ax = axes[0]
        for i, target in enumerate(("layer1", "layer2", "layer3", "layer4")):
            for crop, style_ in (("off", "-o"), ("auto", "--s")):
                rows = [r for r in size_rows if r["target"] == target and r["crop"] == crop]
                face = "none" if crop == "auto" else f"C{i}"
                label = f"{target}" + (", TRF crop" if crop == "auto" else "")
                xs, ys = [r["side"] for r in rows], [r["s_per_image"] for r in rows]
                ax.plot(xs, ys, style_, color=f"C{i}", ms=3.5, mfc=face, label=label)
        sides = sorted({r["side"] for r in size_rows})
        ax.set_xscale("log")
        ax.set_xticks(sides, [str(v) for v in sides])
        ax.xaxis.set_minor_formatter(NullFormatter())
        log_axis(ax, "y")
        ax.set(xlabel="input side (px)", ylabel="seconds per image")
        ax.set_title("cost vs input side (ResNet-18)")
        ax.legend(fontsize=6, ncol=2, loc="upper left")
        ax.grid(True, which="both", alpha=0.3)
        ax = axes[1]
        gflop = [r["total_gflop"] for r in depth_rows]
        ax.plot(gflop, [r["s_per_image"] for r in depth_rows], "o-", markersize=4)
        for k, r in enumerate(depth_rows):  # beside the marker, alternating above / below
            ax.annotate(r["model"], (r["total_gflop"], r["s_per_image"]), fontsize=6.5,
                        textcoords="offset points", xytext=(5, -9 if k % 2 else 4))  # fmt: skip
        ax.set_xlim(0, max(gflop) * 1.3)
        ax.set_ylim(0, max(r["s_per_image"] for r in depth_rows) * 1.2)
        ax.set(xlabel="GFLOP per image (forward + input-gradient backward)",
               ylabel="seconds per image")  # fmt: skip
        ax.set_title("cost vs depth (224 px, layer4)")
        ax.grid(True, alpha=0.3)
        ax = axes[2]
        rows = [r for r in sample_rows if r["n_samples"] < 256]
        ns = [r["n_samples"] for r in rows]
        ax.plot(ns, [1 - r["corr_vs_256"] for r in rows], "o-", markersize=4,
                label="1 − corr(map_n, map_256)")  # fmt: skip
        ax.plot(ns, [1 - r["corr_two_independent"] for r in rows], "s--", markersize=4,
                label="1 − corr of two independent\nn-sample maps")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.xaxis.set_minor_formatter(NullFormatter())
        log_axis(ax, "y")
        ax.set(xlabel="samples per map", ylabel="1 − correlation")
        ax.set_title("convergence (ResNet-18 layer4, 112 px)")
        ax.legend(fontsize=6.5, loc="lower left")
        ax.grid(True, which="both", alpha=0.3)
        caption(fig, "reduction: mean |∂y/∂x| (abs); samples: 16 per probe (left), 4 (middle), "
                "n (right); models: torchvision ResNets, random init; layers: as marked; CPU, "
                "best of the repeats")  # fmt: skip
    save_figure(fig, path)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
