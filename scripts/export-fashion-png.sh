#!/usr/bin/env bash
# Writes Fashion-MNIST (Debian's dataset-fashion-mnist) as a PNG class-folder tree of colour
# 32x32 images, with a data set description, so the image-folder path can be compared with
# the IDX path on the same data:  scripts/export-fashion-png.sh [OUT] [TRAIN_LIMIT] [TEST_LIMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/fashion-png}
train_limit=${2:-0}
test_limit=${3:-0}
case "$train_limit$test_limit" in *[!0-9]*) echo "usage: $0 [OUT] [TRAIN_LIMIT] [TEST_LIMIT] (whole numbers)" >&2; exit 2;; esac
bin=${EDGEFM_BIN:-build/edgefm}
[ -x "$bin" ] || { echo "export-fashion-png: $bin is missing; run scripts/build.sh first" >&2; exit 1; }
mkdir -p "$out"
spec='{"modality": "image", "shape": [3, 32, 32], "image": {"resize_mode": "shorter"}}'
echo "$spec" > "$out/spec.json"
"$bin" data export --part train --train-limit "$train_limit" --spec "$out/spec.json" --out-dir "$out/train"
"$bin" data export --part test --test-limit "$test_limit" --spec "$out/spec.json" --out-dir "$out/test"
cat > "$out/fashion-png.json" <<JSON
{"name": "fashion-mnist-png", "source": "image_folder", "directory": ".",
 "train": "train", "test": "test",
 "class_names": ["t-shirt", "trouser", "pullover", "dress", "coat",
                 "sandal", "shirt", "sneaker", "bag", "ankle boot"],
 "prompt_templates": ["a photo of a {}", "a picture of a {}", "a {}",
                      "a grey photo of a {}", "an image of a {}"],
 "spec": $spec}
JSON
echo "export-fashion-png: wrote $out (describe it with --data $out/fashion-png.json)"
