#!/usr/bin/env bash
# The padding study of the atlas (experiments/atlas_padding/README.md): zero vs reflect vs
# circular padding on a Luo-style ReLU stack and on ResNet-18 (random weights, seed 0), every
# output unit of the map, then the comparison (study.py). About 4 minutes on 2 shared cores.
#   bash experiments/atlas_padding/run.sh [RUNS_DIR]   (default: outputs/atlas_padding)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
runs="${1:-outputs/atlas_padding}"
py="${PYTHON:-python}"
common=(probe.n_samples=64 probe.batch_size=32 plot.dpi=100)
for mode in zeros reflect circular; do
  "$py" -m erf.run experiment=atlas model.padding_mode="$mode" inputs.size=[24,24] \
    "${common[@]}" hydra.run.dir="$runs/luo_$mode"
  "$py" -m erf.run job=atlas model=torchvision model.name=resnet18 +model.padding_mode="$mode" \
    inputs.size=[64,64] probe.target=layer1 atlas.units=all "${common[@]}" \
    hydra.run.dir="$runs/resnet18_$mode"
done
# The same Luo atlas with every unit in its own backward pass: the time sharing saves.
"$py" -m erf.run experiment=atlas inputs.size=[24,24] atlas.share=off "${common[@]}" \
  hydra.run.dir="$runs/luo_zeros_unshared"
"$py" "$here/study.py" "$runs" "$here"
