#!/usr/bin/env bash
# The exact commands behind benchmarks/results/dictionary_*.md (the data-free dictionary probe).
# CPU only, 2 shared cores: one torch thread per run was faster than two under load.
# Each run is resumable: rerunning a command reuses OUT/attractors and every finished dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1

# TAEF2 (real weights, ../shared/models/taef2) at 32 px: latents 32x4x4 = 512 dims, 512 Gaussian
# seeds (N = k, as the paper's 4096 for a 4x32x32 latent). The map is expansive: the atoms are the
# END POINTS after 50 steps (the paper's 500 steps would take ~8 h on this CPU).
taef2() {
  # the table: OMP and lasso at the paper's 5% (26 of 512 atoms), 500 random test images per set
  .venv/bin/probe dictionary ../shared/models/taef2 --resolution 32 --max-steps 50 \
    --datasets cifar10,imagenet1k-500,fashion-mnist --n-images 500 --sparsity 0.05 --coder both \
    --out runs/dictionary-taef2
  # the sparsity-vs-MSE curve (OMP, 100% ... 0.78% of the atoms) on the same end points, 200 images per set
  .venv/bin/probe dictionary ../shared/models/taef2 --resolution 32 --max-steps 50 \
    --attractors runs/dictionary-taef2/attractors \
    --datasets cifar10,imagenet1k-500,fashion-mnist --n-images 200 --sparsity 0.05 --sweep --coder omp \
    --out runs/dictionary-taef2-sweep
}

# The bundled Fashion-MNIST conv autoencoder (k = 16, 28 px grey; same weights as runs/fmnist-k16):
# 4096 Gaussian seeds as in the paper, iterated to tol 1e-6 within 3000 steps (the family's defaults).
# The atoms are all distinct attractors found (fewer than 20: the table says the 5% code is degenerate
# and codes with the unmerged end points too); the orthogonal basis has at most 16 (the latent dims).
fmnist() {
  .venv/bin/probe dictionary builtin:fmnist-k16 --seeds 4096 \
    --datasets fashion-mnist,mnist,cifar10,imagenet1k-500 --n-images 500 --sparsity 0.05 --sweep --coder both \
    --out runs/dictionary-fmnist-k16
}

# A CIFAR-10 conv autoencoder of the paper's family (k = 128, d = 32, 32 px RGB), trained here for 20
# epochs on the 10k-image CIFAR-10 train split (resumable; a finished run is not retrained), then the
# same probe with 4096 seeds; the orthogonal basis has at most 128 atoms (the latent dims).
cifar() {
  .venv/bin/probe train --dataset cifar10 --image-channels 3 --width 32 --bottleneck 128 --epochs 20 \
    --out runs/dictionary-cifar10-k128-model
  .venv/bin/probe dictionary runs/dictionary-cifar10-k128-model --seeds 4096 \
    --datasets cifar10,imagenet1k-500,fashion-mnist,mnist --n-images 500 --sparsity 0.05 --sweep --coder both \
    --out runs/dictionary-cifar10-k128
}

# benchmarks/results/dictionary_<name>.md: the generated tables of each run, below a reading written by hand
assemble() {  # name, run folders...
  local name=$1; shift
  local md=benchmarks/results/dictionary_$name.md
  local reading
  reading=$(sed -n '/^## Reading/,/^## Generated/p' "$md" 2>/dev/null | sed '$d' || true)
  {
    echo "# Dictionary probe: $name"
    echo
    echo "Made by \`benchmarks/dictionary_runs.sh $name\` (CPU, OMP_NUM_THREADS=1, shared 2-core machine)."
    echo
    [ -n "$reading" ] && { echo "$reading"; echo; }
    echo "## Generated tables"
    for run in "$@"; do echo; cat "$run/dictionary.md"; done
  } > "$md.tmp" && mv "$md.tmp" "$md"
  cp "${@: -1}/sparsity_mse.png" "benchmarks/results/dictionary_${name}_sparsity_mse.png"
  cp "$1/reconstructions.png" "benchmarks/results/dictionary_${name}_reconstructions.png"
}

case "${1:-all}" in
  taef2) taef2; assemble taef2 runs/dictionary-taef2 runs/dictionary-taef2-sweep ;;
  fmnist) fmnist; assemble fmnist-k16 runs/dictionary-fmnist-k16 ;;
  cifar) cifar; assemble cifar10-k128 runs/dictionary-cifar10-k128 ;;
  all) "$0" taef2; "$0" fmnist; "$0" cifar ;;
  assemble) shift; assemble "$@" ;;
esac
