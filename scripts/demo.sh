#!/usr/bin/env bash
# The main job end to end on the embedded default: train (or reuse) the reference FM on
# Fashion-MNIST, customize the smallest edge model from at most 20 % of the training images
# chosen by the selection strategy, customize two seen-classes-only students for the
# open-set evaluation, evaluate everything, print a short table, run a short live
# experiment (cloud service + link emulator on a real uplink trace + edge runtime), and end
# with a short open-set scenario (the whole customization loop live: audits, drift, uploads,
# a customization job, the model hot swap).
# Results: out/demo/summary.json (schema in README.md), curve.csv, curve.png, experiment/,
# scenario/, and results.md: every table with its command, date and machine
# (scripts/results.py; `scripts/results.py --collect out/demo --publish` puts them into
# docs/results.md).
#
#   scripts/demo.sh                     Fashion-MNIST; FM_EPOCHS=3 by default (12: longer)
#   DEMO_TASK=keywords scripts/demo.sh  the synthesized spoken-keyword task (audio, log-mel):
#                                       data set, FM, students, evaluation with open set and a
#                                       live experiment over all six bundled traces;
#                                       results in out/demo-keywords/summary.json
set -euo pipefail
cd "$(dirname "$0")/.."
case "${DEMO_TASK:=fashion-mnist}" in
  fashion-mnist|keywords) ;;
  *) echo "demo: DEMO_TASK must be fashion-mnist or keywords, got '$DEMO_TASK'" >&2; exit 2 ;;
esac
scripts/setup.sh
source scripts/env.sh
scripts/build.sh --target edgefm

bin=build/edgefm
started=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - started )) s)"; }

if [ "$DEMO_TASK" = keywords ]; then
  out=out/demo-keywords
  data=out/keywords
  desc=$data/keywords.json
  split=configs/split-keywords.json
  mkdir -p "$out" models
  KW_FM_EPOCHS=${KW_FM_EPOCHS:-30}
  fm=models/fm-keywords-e${KW_FM_EPOCHS}.pt
  step "1/6 the synthesized keywords data set (espeak-ng + sox; reused when $desc exists)"
  [ -f "$desc" ] || scripts/make-keywords.sh --out "$data"
  step "2/6 reference FM on log-mel spectrograms ($KW_FM_EPOCHS epochs; reused when $fm exists)"
  $bin fm train --data "$desc" --epochs "$KW_FM_EPOCHS" --batch-size 128 --width 16 \
    --out "$fm" --reuse --json "$out/fm-train.json"
  step "3/6 customize tiny-cnn from the device's recordings (FM embeddings as targets)"
  $bin customize --fm "$fm" --data "$desc" --arch tiny-cnn --validation 450 --budget 100% \
    --strategy random --epochs 30 --score hybrid --out models/student-keywords.pt \
    --json "$out/customize.json"
  step "4/6 customize on the seen words only (a third of the words unseen), for the open set"
  $bin customize --fm "$fm" --data "$desc" --arch wide-cnn --lambda 0 --outliers 0.5 \
    --validation 300 --budget 100% --strategy random --epochs 30 --score hybrid \
    --split "$split" --out models/student-keywords-seen.pt --json "$out/customize-seen.json"
  step "5/6 evaluate: FM only, edge only, EdgeFM at the searched threshold, open set"
  $bin eval --fm "$fm" --data "$desc" --student models/student-keywords.pt --l-app-ms 14 --uplink-mbps 1 \
    --open-set "$split=models/student-keywords-seen.pt" --out-dir "$out" --json "$out/summary.json"
  step "6/6 live on all six bundled traces: cloud service, link emulator and edge as processes"
  $bin experiment --fm "$fm" --data "$desc" --student models/student-keywords.pt --l-app-ms 0 \
    --out-dir "$out/experiment"
  cat "$out/experiment/results.md"
  python3 scripts/results.py "$out" --out "$out/results.md"
  echo
  echo "demo (keywords) finished in $(( $(date +%s) - started )) s: $out/summary.json," \
    "$out/curve.png, $out/results.md"
  exit 0
fi

out=out/demo
mkdir -p "$out" models
FM_EPOCHS=${FM_EPOCHS:-3}
fm=models/fm.pt  # the FM every command reads by default

step "1/6 reference FM ($FM_EPOCHS epochs; reused when $fm exists with these settings)"
$bin fm train --epochs "$FM_EPOCHS" --out "$fm" --reuse --json "$out/fm-train.json"

step "2/6 customize tiny-cnn from 20 % of the training images (lowest margin + diversity)"
$bin customize --fm "$fm" --arch tiny-cnn --budget 20% --strategy margin_diversity \
  --score hybrid --out models/student.pt --json "$out/customize.json"

step "3/6 customize on seen classes only, for the open-set evaluation (two splits)"
# Imitation only (--lambda 0) plus synthetic outliers keeps unseen classes apart from the seen
# ones in the student's space, where the hybrid score's Mahalanobis half finds them.
for split in default even; do
  $bin customize --fm "$fm" --arch wide-cnn --lambda 0 --outliers 0.5 --budget 20% \
    --strategy margin_diversity --score hybrid --split "configs/split-$split.json" \
    --out "models/student-seen-$split.pt" --json "$out/customize-seen-$split.json"
done

step "4/6 evaluate: FM only, edge only, EdgeFM at the searched threshold, open set"
# The operating point the results report: L_app 14 ms over an assumed 80 ms / 1 Mbit/s link
# (tighter than the shared defaults of 20 ms and 5 Mbit/s, docs/cli.md).
$bin eval --fm "$fm" --student models/student.pt --l-app-ms 14 --uplink-mbps 1 \
  --open-set configs/split-default.json=models/student-seen-default.pt \
  --open-set configs/split-even.json=models/student-seen-even.pt \
  --out-dir "$out" --json "$out/summary.json"

step "5/6 live: cloud service, link emulator on a cellular trace and edge runtime as processes"
# L_app derived from the student's profile so that it binds (--l-app-ms 0, docs/experiment.md).
$bin experiment --fm "$fm" --student models/student.pt --traces Verizon-LTE-short --l-app-ms 0 \
  --samples "${EXPERIMENT_SAMPLES:-1000}" --out-dir "$out/experiment"
cat "$out/experiment/results.md"

step "6/6 open-set scenario, short: unseen classes appear, audits detect it, the loop customizes"
$bin scenario --fm "$fm" --split default --history 1500 --samples 4000 --shift-at 600 \
  --detection-samples 600 --rate 50 --window-s 6 --job-epochs 6 --job-min-new 150 \
  --upload-per-minute 900 --post-shift 2000 \
  --study-epochs 4 --random-repeats 1 --out-dir "$out/scenario"

python3 scripts/results.py "$out" --out "$out/results.md"

echo
echo "demo finished in $(( $(date +%s) - started )) s: $out/summary.json, $out/curve.png," \
  "$out/results.md (every table with its command; scripts/results.py --collect $out --publish" \
  "keeps the JSON in docs/results/ and rewrites docs/results.md)"
