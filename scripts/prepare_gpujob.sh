#!/usr/bin/env bash
# Makes .gpujob/ (git-ignored): padded Fashion-MNIST subsets as uint8 .npy [N, 1, 32, 32] (black
# border, the demo model's layout) and their labels (fashion_{train,test}_labels.npy, uint8 [N], for the
# conditional demo scripts/train_fashion_ldm.py), so that a GPU machine without /usr/share/datasets gets
# its data inside the working tree. Default: 20000 training + 10000 test images (30 MB; carry limit 60 MB).
#   bash scripts/prepare_gpujob.sh [--train N] [--test N] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN=20000 TEST=10000 OUT=.gpujob
while [[ $# -gt 0 ]]; do
  case "$1" in
    --train) TRAIN=$2; shift 2 ;;
    --test) TEST=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "error: unknown option '$1' (valid: --train N, --test N, --out DIR)" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
/usr/bin/python3 - "$OUT" "$TRAIN" "$TEST" <<'PYEOF'
import os, sys
import numpy as np
sys.path.insert(0, "scripts")
import fashion_data
out, n_train, n_test = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for split, n in (("train", n_train), ("test", n_test)):
    images, labels = fashion_data.load(split)
    if not 1 <= n <= len(images):
        sys.exit(f"error: --{split} {n} is outside [1, {len(images)}]")
    padded = np.pad(images[:n], ((0, 0), (2, 2), (2, 2)))[:, None]  # 0 = black = -1 in model range
    path = os.path.join(out, f"fashion_{split}.npy")
    np.save(path + ".tmp.npy", np.ascontiguousarray(padded, dtype=np.uint8))
    os.replace(path + ".tmp.npy", path)
    lpath = os.path.join(out, f"fashion_{split}_labels.npy")
    np.save(lpath + ".tmp.npy", labels[:n].astype(np.uint8))
    os.replace(lpath + ".tmp.npy", lpath)
    print(f"{path}: {padded.shape} uint8", file=sys.stderr)
PYEOF
du -sh "$OUT" >&2
