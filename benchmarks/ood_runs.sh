#!/usr/bin/env bash
# Real OOD runs behind benchmarks/results/ood_*.md (paper section 4.2; METHOD.md section 5).
# Usage: benchmarks/ood_runs.sh [fmnist|taef2|all]   (CPU; run from the repository root)
# Full reports (scores, meta.json, histograms.png) go to runs/ood-*; the markdown table and the
# CSV with bootstrap AUROC intervals are copied to benchmarks/results/; the "Reading" section at
# the end of each results file is written by hand after the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PROBE=${PROBE:-.venv/bin/probe}
FMNIST_MODEL=${FMNIST_MODEL:-runs/fmnist-k16-oldinit}  # a probe-trained k=16 model; builtin:<name> once bundled
TAEF2=${TAEF2:-../shared/models/taef2}
which=${1:-all}

publish() {  # $1 = run folder, $2 = result name
  { cat "$1/ood.md"; echo; echo "Machine: $(nproc) CPU cores shared with other jobs, torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'); $(date -u +%Y-%m-%d)."; } \
    > "benchmarks/results/ood_$2.md"
  cp "$1/ood.csv" "benchmarks/results/ood_$2.csv"
}

if [[ $which == fmnist || $which == all ]]; then
  # (a) the bundled Fashion-MNIST conv AE (k=16), paper iteration settings (tol 1e-6, <= 3000 steps)
  $PROBE ood "$FMNIST_MODEL" --train fashion-mnist --test-in fashion-mnist \
    --test-out mnist,noise:uniform,noise:gaussian,cifar10 \
    --n-train 1000 --n-test 500 --out runs/ood-fmnist
  publish runs/ood-fmnist fmnist
fi

if [[ $which == taef2 || $which == all ]]; then
  # (b) TAEF2 on held-out sets at 32 px. CPU-sized: 100 images per set and a 20-step budget
  # (TAEF2 is expansive: its iteration does not converge in the paper's 500 steps either).
  $PROBE ood "$TAEF2" --train cifar10 --test-in cifar10 --test-out imagenet1k-500,noise:uniform,noise:gaussian \
    --resolution 32 --n-train 100 --n-test 100 --knn-k 10 --max-steps 20 --image-batch 50 --out runs/ood-taef2
  publish runs/ood-taef2 taef2
fi
