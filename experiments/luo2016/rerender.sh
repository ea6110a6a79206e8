#!/usr/bin/env bash
# Re-run the Luo et al. 2016 studies whose committed tables carry intervals, and copy the files
# this folder commits (the same names) from each new sweep folder over the committed ones.
#   bash experiments/luo2016/rerender.sh [study ...]     (default: every study below)
# CPU scale, seed 0, from the repository root. A study is a folder of this one (a variant is a
# subfolder) and the overrides that made it; files a study does not write (r2_difference.json,
# plain_control.json, gap_vs_runs.*) stay as they are.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${ERF_RERENDER_DIR:-outputs/rerender}"
declare -A overrides=(
  [subsample_dilation]="experiment=subsample_dilation"
  [dropout_skip]="experiment=dropout_skip"
  [init_sweep]="experiment=init_sweep"
  [depth_sweep]="experiment=depth_sweep"
  [skip_scale]="experiment=skip_scale"
  [activation_settings]="experiment=activation_settings"
  [activation_saturation]="experiment=activation_saturation"
  [activation_saturation/luo]="experiment=activation_saturation probe.protocol=luo"
  [activation_sweep]="experiment=activation_sweep"
  [activation_sweep/channel0]="experiment=activation_sweep probe.channel=0 probe.draws=4 probe.n_samples=16"
  [growth]="experiment=growth"
  [growth/protocols]="experiment=growth model.init=random model.depth=5,10,20,40"
  [growth_reductions]="experiment=growth_reductions model.depth=5,10,20,40"
)
studies=("$@")
if [ ${#studies[@]} -eq 0 ]; then
  studies=("${!overrides[@]}")
fi
for study in "${studies[@]}"; do
  out="$work/$study"
  rm -rf "$out"
  start=$(date +%s)
  # shellcheck disable=SC2086  # the overrides are words
  python -m erf.run ${overrides[$study]} scale=cpu device=cpu seed=0 resume=false \
    "hydra.sweep.dir=$out" > "$work/${study//\//_}.log" 2>&1
  echo "$study: $(( $(date +%s) - start )) s"
  for committed in "$here/$study"/*; do
    name="$(basename "$committed")"
    if [ -f "$committed" ] && [ -f "$out/$name" ]; then
      cp "$out/$name" "$committed"
    fi
  done
done
