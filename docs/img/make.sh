#!/usr/bin/env bash
# Regenerates the pictures of docs/plots.md: trains the lecture's specs in a scratch
# folder (so the legends read `runs/NAME`) and draws each picture with `nnspec plot`.
#
#     bash docs/img/make.sh        (a few minutes on a CPU; PYTHON=... names the interpreter)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
img="$repo/docs/img"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
nnspec() { PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python}" -m nnspec.cli "$@"; }

for spec in pass_class overfit_rescued spirals_linear spirals_relu lr_sweep blobs_softmax digits_mlp sgd_pure minibatch; do
    nnspec train "$repo/specs/$spec.nn" -q > /dev/null
done
nnspec train "$repo/specs/full_batch.nn" --epochs 20 -q > /dev/null  # the same 20 epochs as the other two
nnspec plot runs/pass_class -o "$img/curves.png" --overwrite
nnspec plot runs/overfit_rescued -o "$img/curves_early_stop.png" --overwrite
nnspec plot runs/spirals_linear runs/spirals_relu -o "$img/compare.png" --overwrite
nnspec plot runs/lr_sweep -o "$img/sweep.png" --overwrite
nnspec plot runs/sgd_pure runs/minibatch runs/full_batch --steps --smooth 0.9 -o "$img/steps.png" --overwrite
nnspec plot runs/pass_class --boundary -o "$img/boundary_pass_class.png" --overwrite
nnspec plot runs/spirals_linear runs/spirals_relu --boundary -o "$img/boundary.png" --overwrite
nnspec plot runs/blobs_softmax --boundary -o "$img/boundary_blobs.png" --overwrite
nnspec plot runs/digits_mlp --confusion -o "$img/confusion.png" --overwrite
