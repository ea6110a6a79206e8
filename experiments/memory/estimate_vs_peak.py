"""The probe's memory estimate of a batch against the measured peak, for five real jobs (the
constant of the estimate was chosen on them) and three held out.

For each job, in a fresh process: the model is built and warmed up (one probe of one sample),
then ``erf.measure_erf`` runs one batch of ``batch_size`` samples. "Estimate" is what the
preflight compares with the free memory (``erf.probe.batches``: one sample's saved tensors
plus its input, times two, times the batch size); "peak" is the rise of the process's peak
resident memory (``ru_maxrss``) over its resident memory just before the probe.

    python experiments/memory/estimate_vs_peak.py experiments/memory/estimate_vs_peak.json
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

JOBS = {
    "ConvStack d4 c32 256px b16": "from erf import ConvStack; "
    "model = ConvStack(depth=4, kernel_size=3, channels=32, in_channels=1, init='random'); "
    "shape, target, batch = (1, 256, 256), None, 16",
    "ConvStack d20 c16 128px b32": "from erf import ConvStack; "
    "model = ConvStack(depth=20, kernel_size=3, channels=16, in_channels=1, init='random'); "
    "shape, target, batch = (1, 128, 128), None, 32",
    "ResidualStack b8 c32 128px b16": "from erf.nets.luo import ResidualStack; "
    "model = ResidualStack(blocks=8, kernel_size=3, channels=32, in_channels=1); "
    "shape, target, batch = (1, 128, 128), None, 16",
    "ResNet-18 layer3 224px b8": "import torchvision; "
    "model = torchvision.models.resnet18(weights=None).eval(); "
    "shape, target, batch = (3, 224, 224), 'layer3', 8",
    "ConvNeXt-atto stages.2 224px b8": "import timm; "
    "model = timm.create_model('convnext_atto', pretrained=False).eval(); "
    "shape, target, batch = (3, 224, 224), 'stages.2', 8",
}
# Not used to choose the constant (4 x the largest saved tensor): a check on other jobs.
HELD_OUT = {
    "ConvStack d8 c64 128px b8 (held out)": "from erf import ConvStack; "
    "model = ConvStack(depth=8, kernel_size=5, channels=64, in_channels=1, init='random'); "
    "shape, target, batch = (1, 128, 128), None, 8",
    "MobileNetV3-S features.9 224px b16 (held out)": "import torchvision; "
    "model = torchvision.models.mobilenet_v3_small(weights=None).eval(); "
    "shape, target, batch = (3, 224, 224), 'features.9', 16",
    "ResNet-50 layer2 160px b8 (held out)": "import torchvision; "
    "model = torchvision.models.resnet50(weights=None).eval(); "
    "shape, target, batch = (3, 160, 160), 'layer2', 8",
}

CHILD = """
import json, os, resource, sys
import torch
torch.set_num_threads(1)
import erf.probe.batches as batches
{build}
seen = []
real = batches._per_sample_bytes
def spy(step, stream):
    seen.append(real(step, stream))
    return seen[-1]
batches._per_sample_bytes = spy
import erf
erf.measure_erf(model, shape, target=target, n_samples=1, batch_size=1, progress=False)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
erf.measure_erf(model, shape, target=target, n_samples=batch, batch_size=batch, progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({{"estimate": seen[-1] * batch, "peak": peak, "batch": batch}}))
"""


def main(out: str) -> None:
    rows = {}
    for name, build in {**JOBS, **HELD_OUT}.items():
        code = CHILD.format(build=build)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{name}: {proc.stderr[-2000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["ratio"] = row["estimate"] / row["peak"]
        rows[name] = row
        mib = 1 << 20
        print(
            f"{name:46s} estimate {row['estimate'] / mib:8.1f} MiB  peak {row['peak'] / mib:8.1f}"
            f" MiB  estimate/peak {row['ratio']:.2f}",
            flush=True,
        )
    Path(out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
