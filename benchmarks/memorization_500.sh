#!/usr/bin/env bash
# Issue 14 item 1: the memorization sweep trained for the paper's 500 epochs (Appendix D: Adam lr 5e-4,
# weight decay 1e-4), attractors counted at log-spaced epochs. CPU scale, recorded in
# benchmarks/results/memorization500_*.md. Usage: benchmarks/memorization_500.sh [mnist|others|all]  (default all:
# each stage runs two processes at once, one per core). Resumable model by model (runs/ is git-ignored).
#
# CPU choices (2 cores, about 90 CPU-minutes for the MNIST sweep): 1,000 training images (a seeded subset;
# memorization is a small-data regime, and 1,000 images x 500 epochs = 16,000 optimizer steps of batch 32),
# width d = 16, one thread per process. StepLR every 100 epochs x 0.5 (the paper names a step scheduler
# without values; the default step of 10 would shrink the rate by 2^-50 over 500 epochs).
# On a GPU the paper-scale command is in benchmarks/results/fidelity.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PROBE=${PROBE:-.venv/bin/probe}
export OMP_NUM_THREADS=1
what=${1:-all}
COMMON=(--epochs 500 --count-epochs 1,2,5,10,20,50,100,200,500 --n-train 1000 --n-test 1000 --width 16
        --train-batch 32 --lr-step 100 --seeds 256 --n-data-seeds 256 --n-null 1000 --count-seeds 128 --threads 1)

mnist_a() { $PROBE memorization --dataset mnist --bottlenecks 2,8,32,128,512 "${COMMON[@]}" --out runs/mem500-mnist-a; }
mnist_b() { $PROBE memorization --dataset mnist --bottlenecks 4,16,64,256 "${COMMON[@]}" --out runs/mem500-mnist-b; }
# Fashion-MNIST and CIFAR-10 at k in {2, 16, 128, 512}; a CIFAR-10 model costs about 1.5 MNIST models,
# so CIFAR-10 k = 2 rides with Fashion-MNIST (the report merges study folders of one dataset).
other_a() {
  $PROBE memorization --dataset fashion-mnist --bottlenecks 2,16,128,512 "${COMMON[@]}" --out runs/mem500-fmnist
  $PROBE memorization --dataset cifar10 --bottlenecks 2 "${COMMON[@]}" --out runs/mem500-cifar10-a
}
other_b() { $PROBE memorization --dataset cifar10 --bottlenecks 16,128,512 "${COMMON[@]}" --out runs/mem500-cifar10-b; }
# Every model measured again with noise seeds matched to the mean and spread of the encoded training latents
# (seed_dist data): N(0, I) seeds lie at norm sqrt(k), far inside these models' latents (norm ~100-170 on MNIST).
datanoise() {  # $1: mnist, fmnist or cifar10
  local tag=$1 dataset=$1
  [[ $tag == fmnist ]] && dataset=fashion-mnist
  for folder in runs/mem500-$tag*/k[0-9]*; do
    [[ $folder == *datanoise* ]] && continue
    $PROBE memorization --model "$folder" --dataset $dataset --n-train 1000 --n-test 1000 --seeds 256 \
      --n-data-seeds 256 --n-null 1000 --seed-dist data --threads 1 --out "runs/mem500-$tag-datanoise/$(basename "$folder")" --quiet
  done
}
case $what in
  datanoise) datanoise mnist > runs/mem500-dn-a.log 2>&1 & { datanoise fmnist; datanoise cifar10; } > runs/mem500-dn-b.log 2>&1 & wait ;;
  mnist) mnist_a > runs/mem500-a.log 2>&1 & mnist_b > runs/mem500-b.log 2>&1 & wait ;;
  others) other_a > runs/mem500-c.log 2>&1 & other_b > runs/mem500-d.log 2>&1 & wait ;;
  others-a) other_a > runs/mem500-c.log 2>&1 ;;   # one process each: start as a core frees
  others-b) other_b > runs/mem500-d.log 2>&1 ;;
  all) "$0" mnist; "$0" others; "$0" datanoise ;;
  *) echo "usage: $0 [mnist|others|datanoise|all]" >&2; exit 2 ;;
esac
