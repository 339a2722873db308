#!/usr/bin/env bash
# Writes a synthesized spoken-keyword data set: short English words spoken by espeak-ng in
# several accents and voice variants, altered with sox (tempo, pitch, filtering, reverb,
# level, placement in the 1 s window) and mixed with white, pink or brown noise.
#
#   OUT/train/<word>/*.wav  OUT/test/<word>/*.wav    16 kHz mono 16-bit PCM, exactly 1 s
#   OUT/keywords.json       the data set description (source "audio_folder")
#   OUT/metadata.csv        every file's generation parameters
#   OUT/README.md           what it is and how it was made
#   OUT/SHA256SUMS          checksums of all of the above
#
# The test part uses only accent/variant combinations never seen in training: every test
# recording has a held-out accent, a held-out voice variant, or both.
#
# Reproducible byte for byte: every random choice comes from a small generator in awk
# (Park-Miller, exact in any awk's doubles) seeded per sample from (--seed, part, word,
# index), all drawn before any audio is made; sox runs with -R (its own fixed random
# numbers) and without dither; the noise is cut from fixed noise recordings. So --jobs does
# not change the output, and a smaller --per-word-train gives the first files of a larger one.
# Needs espeak-ng and sox (scripts/setup.sh installs them).
set -euo pipefail

prog=make-keywords
default_words=yes,no,up,off,down,go,dog,left,right,on,three,tree,bed,bird,stop
# espeak-ng's English accents (`espeak-ng --voices=en`, the gmw/ voices) and voice variants
# (`espeak-ng --voices=variant`). Held out of training: two accents and three variants.
train_accents=(en-gb en-us en-gb-scotland en-gb-x-gbclan en-gb-x-rp en-029)
test_accents=(en-gb-x-gbcwmd en-us-nyc)
train_variants=(m1 m2 m3 m4 m5 m7 f1 f2 f3 f5 whisper klatt)
test_variants=(m6 f4 croak)

usage() {
  cat <<EOF
usage: scripts/make-keywords.sh [options]

Synthesizes a spoken-keyword data set with espeak-ng and sox (see the top of this script).

  --out DIR              output folder (default out/keywords); must be absent or empty
  --per-word-train N     training recordings per word (default 150)
  --per-word-test N      test recordings per word (default 50)
  --words LIST           comma-separated words (default $default_words)
  --seed S               random seed, 0 to 2147483646 (default 1)
  --jobs J               parallel workers (default: the number of CPUs); output is the same
  --force                replace what an earlier run wrote in DIR
  --help                 this text
EOF
}

bad() {
  echo "$prog: $1 (see --help)" >&2
  exit 2
}

out=out/keywords
per_train=150
per_test=50
words=$default_words
seed=1
jobs=$(nproc 2>/dev/null || echo 1)
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --help | -h) usage; exit 0 ;;
    --force) force=1; shift; continue ;;
    --out | --per-word-train | --per-word-test | --words | --seed | --jobs)
      [ $# -ge 2 ] || bad "$1 needs a value"
      value=$2 ;;
    *) bad "unknown option '$1'" ;;
  esac
  case "$1" in
    --out) out=$value ;;
    --per-word-train) per_train=$value ;;
    --per-word-test) per_test=$value ;;
    --words) words=$value ;;
    --seed) seed=$value ;;
    --jobs) jobs=$value ;;
  esac
  shift 2
done

is_count() { [[ "$1" =~ ^[0-9]{1,10}$ ]]; }
valid_count() { is_count "$1" && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
valid_count "$per_train" 1 999999999 || bad "--per-word-train expects a whole number >= 1, got '$per_train'"
valid_count "$per_test" 1 999999999 || bad "--per-word-test expects a whole number >= 1, got '$per_test'"
valid_count "$jobs" 1 256 || bad "--jobs expects 1 to 256, got '$jobs'"
valid_count "$seed" 0 2147483646 || bad "--seed expects 0 to 2147483646, got '$seed'"
[[ "$words" =~ ^[a-z]+(,[a-z]+)+$ ]] || bad "--words expects at least two comma-separated lowercase words, got '$words'"
[ -n "$out" ] || bad "--out expects a folder"
IFS=, read -r -a word_list <<< "$words"
[ "$(printf '%s\n' "${word_list[@]}" | sort -u | wc -l)" -eq ${#word_list[@]} ] || bad "--words has a word twice: '$words'"

for tool in espeak-ng sox awk sha256sum; do
  command -v "$tool" > /dev/null || { echo "$prog: '$tool' is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
# espeak-ng falls back silently on unknown voices: check against its lists.
known_accents=" $(espeak-ng --voices=en | awk 'NR > 1 {printf "%s ", $2}')"
known_variants=" $(espeak-ng --voices=variant | awk 'NR > 1 {sub(/^!v\//, "", $5); printf "%s ", $5}')"
for accent in "${train_accents[@]}" "${test_accents[@]}"; do
  [[ "$known_accents" == *" $accent "* ]] || { echo "$prog: espeak-ng has no accent '$accent'" >&2; exit 1; }
done
for variant in "${train_variants[@]}" "${test_variants[@]}"; do
  [[ "$known_variants" == *" $variant "* ]] || { echo "$prog: espeak-ng has no voice variant '$variant'" >&2; exit 1; }
done

if [ -e "$out" ] && [ -n "$(ls -A "$out" 2> /dev/null)" ]; then
  [ $force -eq 1 ] || { echo "$prog: '$out' is not empty; remove it or pass --force" >&2; exit 1; }
  rm -rf "${out:?}/train" "${out:?}/test" "$out/keywords.json" "$out/metadata.csv" \
    "$out/README.md" "$out/SHA256SUMS"
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/$prog.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

# ---- noise: fixed recordings (sox -R), each sample cuts 1 s at its own offset -------------
noise_seconds=60
for kind in white pink brown; do
  sox -R -V1 -n -r 16000 -c 1 -e floating-point -b 32 "$work/$kind.wav" synth "$noise_seconds" "${kind}noise"
  sox "$work/$kind.wav" -n stats 2>&1 | awk '/^RMS lev dB/ {print $4}' > "$work/$kind.rms"
done

# ---- the plan: every sample's parameters, drawn up front ---------------------------------
# One tab-separated line per sample:
#   part word index accent variant speed pitch tempo cents filter filter_hz reverb offset_s
#   level_db noise snr_db noise_offset_s
join() { local IFS=,; echo "$*"; }
awk -v seed="$seed" -v words="$words" -v per_train="$per_train" -v per_test="$per_test" \
    -v train_accents="$(join "${train_accents[@]}")" -v test_accents="$(join "${test_accents[@]}")" \
    -v train_variants="$(join "${train_variants[@]}")" -v test_variants="$(join "${test_variants[@]}")" \
    -v noise_seconds="$noise_seconds" '
  function next_u() { state = (state * 16807) % 2147483647; return state / 2147483647 }
  function uniform(lo, hi) { return lo + (hi - lo) * next_u() }
  function pick(n) { return 1 + int(n * next_u()) }  # 1..n
  function word_hash(w,   h, i) {
    h = 0
    for (i = 1; i <= length(w); ++i) h = (h * 31 + index("abcdefghijklmnopqrstuvwxyz", substr(w, i, 1))) % 2147483647
    return h
  }
  function start(part, w, i,   k) {
    state = (seed * 1000003 + part * 7919 + word_hash(w) * 104729 + i * 15485863) % 2147483646 + 1
    for (k = 0; k < 8; ++k) next_u()
  }
  function sample(part_name, part, w, i, combos, combo_accent, combo_variant,   c, filter, fhz, reverb, noise) {
    start(part, w, i)
    c = pick(combos)
    r = next_u()
    if (r < 0.4) { filter = "none"; fhz = 0 }
    else if (r < 0.7) { filter = "lowpass"; fhz = int(uniform(3000, 7000)) }
    else { filter = "highpass"; fhz = int(uniform(100, 500)) }
    if (next_u() < 0.3) reverb = sprintf("%d:%d", int(uniform(10, 60)), int(uniform(20, 80)))
    else reverb = "none"
    noise = pick(3)
    printf "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%.3f\t%d\t%s\t%d\t%s\t%.3f\t%.1f\t%s\t%.1f\t%.4f\n",
      part_name, w, i, combo_accent[c], combo_variant[c],
      int(uniform(120, 200)), int(uniform(25, 75)), uniform(0.85, 1.15), int(uniform(-250, 250)),
      filter, fhz, reverb, uniform(-0.12, 0.12), uniform(-24, -1),
      (noise == 1 ? "white" : noise == 2 ? "pink" : "brown"), uniform(5, 25),
      uniform(0, noise_seconds - 1.5)
  }
  BEGIN {
    nw = split(words, W, ",")
    ta = split(train_accents, TA, ","); xa = split(test_accents, XA, ",")
    tv = split(train_variants, TV, ","); xv = split(test_variants, XV, ",")
    # Training: seen accent x seen variant. Test: every combination with a held-out accent
    # or a held-out variant.
    n_train = 0
    for (a = 1; a <= ta; ++a) for (v = 1; v <= tv; ++v) { ++n_train; TRA[n_train] = TA[a]; TRV[n_train] = TV[v] }
    n_test = 0
    for (a = 1; a <= ta + xa; ++a) for (v = 1; v <= tv + xv; ++v) {
      if (a <= ta && v <= tv) continue
      ++n_test
      TEA[n_test] = a <= ta ? TA[a] : XA[a - ta]
      TEV[n_test] = v <= tv ? TV[v] : XV[v - tv]
    }
    for (w = 1; w <= nw; ++w) {
      for (i = 0; i < per_train; ++i) sample("train", 1, W[w], i, n_train, TRA, TRV)
      for (i = 0; i < per_test; ++i) sample("test", 2, W[w], i, n_test, TEA, TEV)
    }
  }' > "$work/plan.tsv"

# ---- one sample --------------------------------------------------------------------------
make_one() {
  set -euo pipefail
  local part word index accent variant speed pitch tempo cents filter fhz reverb offset level noise snr noise_offset
  IFS=$'\t' read -r part word index accent variant speed pitch tempo cents filter fhz reverb offset \
    level noise snr noise_offset <<< "$1"
  local name dest tmp
  name=$(printf '%s-%04d-%s-%s' "$word" "$index" "$accent" "$variant")
  dest="$out/$part/$word/$name.wav"
  tmp="$work/$part-$word-$index"
  local effects=(rate 16k silence 1 0.01 -50d reverse silence 1 0.01 -50d reverse
    tempo -s "$tempo" pitch "$cents")
  [ "$filter" = none ] || effects+=("$filter" "$fhz")
  [ "$reverb" = none ] || effects+=(reverb "${reverb%%:*}" 50 "${reverb##*:}")
  effects+=(norm -3)
  espeak-ng -v "$accent+$variant" -s "$speed" -p "$pitch" --stdout "$word" |
    sox -R -V1 -t wav - -e floating-point -b 32 "$tmp.wav" "${effects[@]}"
  # The word's length and RMS level, then: where it goes in the 1 s window (its centre at
  # 0.5 s + offset, cropped centrally if longer than 1 s), and the noise's gain for the SNR
  # (relative to the RMS of the word and of the whole noise recording).
  local stats plan
  stats=$(sox "$tmp.wav" -n stats 2>&1 | awk '/^RMS lev dB/ {r = $4} /^Length s/ {l = $3} END {print r, l}')
  plan=$(awk -v stats="$stats" -v offset="$offset" -v snr="$snr" -v noise_rms="$(cat "$work/$noise.rms")" 'BEGIN {
    split(stats, s, " "); rms = s[1]; len = s[2]
    crop = 0; before = 0.5 + offset - len / 2
    if (len >= 1) { crop = (len - 1) / 2; before = 0 }
    else if (before < 0) before = 0
    else if (before + len > 1) before = 1 - len
    printf "%.5f %.5f %.2f\n", crop, before, rms - snr - noise_rms }')
  local crop before gain
  read -r crop before gain <<< "$plan"
  sox -R -D -V1 -m \
    -v 0.5 "|sox -R -V1 $tmp.wav -p trim $crop pad $before" \
    -v 0.5 "|sox -R -V1 $work/$noise.wav -p trim $noise_offset 1 gain $gain" \
    -r 16000 -c 1 -e signed-integer -b 16 "$dest" trim 0 1 gain -n "$level"
  rm -f "$tmp.wav"
  echo "$dest"
}
export -f make_one
export out work

total=$(wc -l < "$work/plan.tsv")
echo "$prog: ${#word_list[@]} words x ($per_train train + $per_test test) = $total recordings, $jobs jobs, seed $seed"
for part in train test; do
  for word in "${word_list[@]}"; do mkdir -p "$out/$part/$word"; done
done
# shellcheck disable=SC2016  # $1 is the worker's argument
xargs -d '\n' -n 1 -P "$jobs" bash -c 'make_one "$1"' _ < "$work/plan.tsv" |
  awk -v total="$total" -v prog="$prog" '{ if (NR % 250 == 0 || NR == total) printf "%s: %d / %d\n", prog, NR, total > "/dev/stderr" }' ||
  { echo "$prog: making a recording failed (the messages above say which)" >&2; exit 1; }
made=$(find "$out/train" "$out/test" -name '*.wav' | wc -l)
[ "$made" -eq "$total" ] || { echo "$prog: expected $total recordings, made $made" >&2; exit 1; }

# ---- description, metadata, README, checksums --------------------------------------------
sorted=$(printf '%s\n' "${word_list[@]}" | LC_ALL=C sort | awk '{printf "%s\"%s\"", (NR > 1 ? ", " : ""), $0}')
cat > "$out/keywords.json" <<EOF
{"name": "keywords", "source": "audio_folder", "directory": ".", "train": "train", "test": "test",
 "class_names": [$sorted],
 "prompt_templates": ["the word {}", "someone saying {}", "a recording of the word {}", "{}", "a voice saying {}"],
 "spec": {"modality": "audio", "audio": {"sample_rate": 16000, "window_s": 1.0, "n_fft": 400, "hop": 160, "mel_bands": 40, "fmin_hz": 20, "fmax_hz": 8000, "floor_db": -80}}}
EOF

{
  echo "file,part,word,index,accent,variant,espeak_speed_wpm,espeak_pitch,tempo,pitch_cents,filter,filter_hz,reverb,offset_s,peak_level_db,noise,snr_db,noise_offset_s"
  awk -F '\t' -v OFS=, '{
    printf "%s/%s/%s-%04d-%s-%s.wav", $1, $2, $2, $3, $4, $5
    for (i = 1; i <= NF; ++i) printf ",%s", $i
    printf "\n" }' "$work/plan.tsv"
} > "$out/metadata.csv"

cat > "$out/README.md" <<EOF
# keywords: synthesized spoken keywords

**This is synthesized speech, not recordings of people.** Every file was made by
\`scripts/make-keywords.sh\` from the EdgeFM repository with the speech synthesizer espeak-ng
($(espeak-ng --version | awk '{print $4}' | head -n 1)) and sox ($(sox --version | awk '{print $NF}')), seed $seed.

- Words (${#word_list[@]}): ${words//,/, }.
  The default list has confusable pairs: three/tree, dog/go, bed/bird, off/up.
- $per_train training and $per_test test recordings per word: \`train/<word>/*.wav\`,
  \`test/<word>/*.wav\`, 16 kHz mono 16-bit PCM, exactly 1 s each. File names:
  \`<word>-<index>-<accent>-<variant>.wav\`; \`metadata.csv\` lists every file's parameters.
- Voices: espeak-ng English accents and voice variants. Training uses the accents
  $(join "${train_accents[@]}" | sed 's/,/, /g')
  with the variants $(join "${train_variants[@]}" | sed 's/,/, /g').
  The test part uses only combinations never seen in training: the held-out accents
  $(join "${test_accents[@]}" | sed 's/,/, /g') with any variant, and any accent with the held-out
  variants $(join "${test_variants[@]}" | sed 's/,/, /g').
  Note: espeak-ng's Caribbean accent (en-029) says "three" with a dental t, close to "tree".
- Per recording, drawn at random: espeak-ng speed (120-200 words/min) and pitch (25-75); then
  with sox: resampled to 16 kHz, silence trimmed, tempo 0.85-1.15, pitch shift
  -250..+250 cents, no filter (40 %), a low-pass at 3-7 kHz (30 %) or a high-pass at
  100-500 Hz (30 %), reverb (30 %), the word's centre placed at 0.5 s +- 0.12 s, white, pink or
  brown noise at 5-25 dB SNR (relative to the word's RMS level), peak level -24 to -1 dBFS.
- Reproducible: the same seed and counts give byte-identical files (\`SHA256SUMS\`), whatever
  the number of parallel jobs.

\`keywords.json\` describes the data set for EdgeFM (an \`audio_folder\` source; log-mel
spectrograms of 40 bands x 98 frames).
EOF

(cd "$out" && find train test -name '*.wav' | LC_ALL=C sort | xargs sha256sum &&
  sha256sum keywords.json metadata.csv README.md) > "$out/SHA256SUMS.tmp"
mv "$out/SHA256SUMS.tmp" "$out/SHA256SUMS"
echo "$prog: wrote $total recordings to $out in $(( $(date +%s) - started )) s"
