#!/usr/bin/env bash
# The exact commands behind benchmarks/results/compare_*.md (probe compare: data-free model comparison).
# Pairs whose relation is known: a model against itself, two training seeds of the same conv
# autoencoder, two bottlenecks, TAEF2 against a conv autoencoder. CPU only, 2 shared cores: one
# torch thread per process. Every step is skipped when its output exists, so a rerun resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
P=.venv/bin/probe
R=runs/compare
RES=benchmarks/results
mkdir -p "$R" "$RES"

# Conv autoencoders of the paper's family on Fashion-MNIST, kept CPU-cheap: 10k training images
# (a seeded subset: the seed also picks the subset), 5 epochs, width 16; paper optimizer settings.
train() {  # name bottleneck seed
  [ -f "$R/$1/probe_map.json" ] && [ -f "$R/$1/train.json" ] && grep -q '"epoch": 5' "$R/$1/train.json" && return
  $P train --dataset fashion-mnist --n-train 10000 --width 16 --bottleneck "$2" --epochs 5 --seed "$3" --out "$R/$1"
}

# Attractors from 1024 Gaussian seeds (seed 0: the same seeds for every model of one latent shape),
# the family's defaults (tol 1e-6, 3000 steps), merge cosine > 0.99. `probe run` records the spec.
attractors() {  # model out [flags]
  [ -f "$2/manifest.json" ] && return
  $P run "$1" --seeds 1024 --out "$2" --no-progress "${@:3}"
}

record() {  # name out_folder -- probe compare arguments
  local name=$1 out=$2
  shift 3
  local t0=$SECONDS
  $P compare "$@" --out "$out" --quiet > /dev/null
  {
    echo "# probe compare: $name"
    echo
    echo "Script: \`benchmarks/compare_runs.sh $name\` (OMP_NUM_THREADS=1)  "
    echo "Run: $(date -u +%Y-%m-%dT%H:%MZ), wall $((SECONDS - t0)) s for the comparison (attractor sets precomputed), load average $(cut -d' ' -f1-3 /proc/loadavg)  "
    echo "Machine: $(uname -m), $(nproc --all) cores, torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'), cpu"
    echo
    cat "$out/compare.md"
    echo
    echo "Decoded dictionaries side by side (rows: the model's own, coded via the other model, via an orthogonal basis):"
    echo
    echo "![compare_$name](compare_$name.png)"
  } > "$RES/compare_$name.md"
  cp "$out/compare.png" "$RES/compare_$name.png"
  echo "wrote $RES/compare_$name.md"
}

models() {
  train k16-s0 16 0
  train k16-s1 16 1
  train k64-s0 64 0
  attractors "$R/k16-s0" "$R/run-k16-s0"
  attractors "$R/k16-s1" "$R/run-k16-s1"
  attractors "$R/k64-s0" "$R/run-k64-s0"
}

self_pair() {
  local spec="$R/run-k16-s0"
  if .venv/bin/python -c 'import probe.maps.registry as r, sys; sys.exit(0 if r.builtin_names() else 1)'; then
    local name
    name=$(.venv/bin/python -c 'import probe.maps.registry as r; print(r.builtin_names()[0])')
    attractors "builtin:$name" "$R/run-builtin"
    spec="$R/run-builtin"
  fi
  record self "$R/cmp-self" -- "$spec" "$spec"
}

taef2_pair() {
  # TAEF2 at 32 px (latents 32x4x4 = 512), 512 seeds, 50 steps: the set benchmarks/dictionary_runs.sh
  # computes (reused when present; ~30 min on this CPU otherwise). The map is expansive: end points.
  if [ -f runs/dictionary-taef2/attractors/meta.json ]; then
    record taef2 "$R/cmp-taef2" -- ../shared/models/taef2 "$R/run-k16-s0" --resolution 32 \
      --attractors-a runs/dictionary-taef2/attractors
  else
    attractors ../shared/models/taef2 "$R/run-taef2" --resolution 32 --max-steps 50 --seeds 512
    record taef2 "$R/cmp-taef2" -- "$R/run-taef2" "$R/run-k16-s0"
  fi
}

case "${1:-all}" in
  models) models ;;
  self) models; self_pair ;;
  seeds) models; record seeds "$R/cmp-seeds" -- "$R/run-k16-s0" "$R/run-k16-s1" ;;
  bottleneck) models; record bottleneck "$R/cmp-bottleneck" -- "$R/run-k16-s0" "$R/run-k64-s0" ;;
  taef2) models; taef2_pair ;;
  all)
    models
    self_pair
    record seeds "$R/cmp-seeds" -- "$R/run-k16-s0" "$R/run-k16-s1"
    record bottleneck "$R/cmp-bottleneck" -- "$R/run-k16-s0" "$R/run-k64-s0"
    taef2_pair
    .venv/bin/python benchmarks/compare_summary.py "$R" "$RES/compare_summary.md"
    ;;
esac
