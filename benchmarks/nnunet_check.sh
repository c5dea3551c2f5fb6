#!/bin/bash
# nnU-Net v2's own integrity check and preprocessing on gauda's exports (docs/nnunet.md, "Checked with
# nnU-Net itself"). nnunetv2 goes into a throwaway virtual environment outside the repository (it pulls
# timm and torchvision; never a dependency of gauda), with torch pinned to the CPU build gauda uses.
#   benchmarks/nnunet_check.sh [DIFFUSION_RUN SEGMENTER_RUN]   # with runs: also sample and augment
set -euo pipefail
cd "$(dirname "$0")/.."
NNVENV=${NNVENV:-/tmp/nnunet-venv}
WORK=${WORK:-/tmp/gauda-nnunet-check}
if [ ! -x "$NNVENV/bin/nnUNetv2_plan_and_preprocess" ]; then
  python3 -m venv "$NNVENV"
  echo "torch==2.13.0" > "$NNVENV/constraints.txt"
  "$NNVENV/bin/pip" install -q -c "$NNVENV/constraints.txt" nnunetv2
fi
rm -rf "$WORK"; mkdir -p "$WORK/raw"
G=.venv/bin/gauda
# small CaDIS- and CholecSeg8k-layout datasets, written as the test suite writes them
.venv/bin/python - "$WORK" <<'PY'
import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "tests")
from conftest import write_cadis, write_cholecseg8k
root, rng = Path(sys.argv[1]), np.random.default_rng(0)
def grid(values):
    return np.asarray(rng.choice(values, size=(48, 64)), dtype=np.uint8)
write_cadis(root / "cadis", {f"Video{v:02d}": [grid([0, 4, 7, 25, 19]) for _ in range(3)] for v in range(1, 9)})
write_cholecseg8k(root / "chole", {f"video{v:02d}_{s:05d}": [grid([50, 11, 21, 31, 255, 0]) for _ in range(3)]
                                   for v in range(1, 7) for s in (0, 80)})
PY
$G data export --format nnunet --out "$WORK/raw/Dataset501_Synthetic" --set data.synthetic.num_videos=12 \
    --set data.synthetic.frames_per_video=3
$G data export --format nnunet --dataset cadis --root "$WORK/cadis" --size 64 --out "$WORK/raw/Dataset511_Cadis"
$G data export --format nnunet --dataset cholecseg8k --root "$WORK/chole" --size 64 --out "$WORK/raw/Dataset512_Cholec"
IDS="501 511 512"
if [ $# -eq 2 ]; then
  $G sample --run "$1" --out "$WORK/raw/Dataset502_Generated" --num 12 --format nnunet
  $G augment --segmenter "$2" --generator "$1" --num 24 --format nnunet --out "$WORK/raw/Dataset503_Augmented"
  IDS="$IDS 502 503"
fi
export nnUNet_raw="$WORK/raw" nnUNet_preprocessed="$WORK/preprocessed" nnUNet_results="$WORK/results"
# shellcheck disable=SC2086
"$NNVENV/bin/nnUNetv2_plan_and_preprocess" -d $IDS --verify_dataset_integrity -c 2d -np 2 -npfp 2
for d in "$WORK"/raw/*/; do
  name=$(basename "$d")
  cmp -s "$d/splits_final.json" "$WORK/preprocessed/$name/splits_final.json" \
    && echo "$name: nnU-Net uses gauda's folds" || echo "$name: nnU-Net's splits_final.json differs from gauda's"
done
