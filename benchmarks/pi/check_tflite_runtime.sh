#!/usr/bin/env bash
# Which edgelite artifacts load and agree with LiteRT under the old tflite-runtime 2.14
# (numpy < 2), what edgelite says for those that do not, and whether
# `edgelite convert --compat tflite-runtime-2.14` fixes them. x86_64.
#
#   usage: check_tflite_runtime.sh [--host-python PY] [--artifacts DIR [--checkpoint FILE]]
#                                  [--calibration DIR] [--images DIR] [--limit N] [--epochs N]
#                                  [--venv DIR] [--wheel FILE] [--root DIR] [--work DIR] [--report FILE]
#
#   --host-python  x86 Python with edgelite, ai-edge-litert and (for --compat) TensorFlow:
#                  the LiteRT reference and the converter (default: the repository's .venv)
#   --artifacts    the .tflite files to test (default: `edgelite demo --epochs N` in WORK/demo,
#                  whose checkpoint is then the --checkpoint)
#   --checkpoint   their Keras checkpoint: also convert it with --compat tflite-runtime-2.14
#   --calibration  int8 calibration images for that conversion (default examples/clothing-mini/train)
#   --images       images to predict (default examples/clothing-mini/validation); --limit N (default 50)
#   --epochs       demo training epochs when no --artifacts (default 3)
#   --venv         venv with tflite-runtime==2.14.0, numpy<2, pillow, click, rich and
#                  edgelite --no-deps (default WORK/venv-tflrt214; created if missing)
#   --wheel        edgelite wheel to install there (default: built from this repository)
#   --root         also run the check in this arm64 userland (build_userland.sh) under emulation:
#                  tflite-runtime 2.14 aarch64 + numpy<2 + edgelite go to ROOT/opt/tflrt214
#   --work         results go to WORK/results, and by default the venv, the demo, the
#                  wheel and the download cache to WORK (default /var/tmp/edgelite-pi/run)
#   EDGELITE_PI_CACHE  download cache for --root's aarch64 wheels (default WORK/cache)
#   --report       Markdown report (default WORK/REPORT.md). check_arm64.sh runs this with
#                  --keep-results --no-report and renders one report for both checks.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$REPO/benchmarks/pi
HOST_PY="" ARTIFACT_DIR="" CHECKPOINT="" CALIBRATION=$REPO/examples/clothing-mini/train
IMAGE_DIR=$REPO/examples/clothing-mini/validation LIMIT=50 VENV="" EPOCHS=3
WHEEL="" ROOT="" WORK=/var/tmp/edgelite-pi/run REPORT="" KEEP=0 RENDER=1
usage() { sed -n '2,29p' "$0" >&2; exit 2; }
ORIG_ARGS=("$@")
while [ $# -gt 0 ]; do
    case $1 in
        --host-python) HOST_PY=$2; shift 2 ;;
        --artifacts) ARTIFACT_DIR=$(realpath "$2"); shift 2 ;;
        --checkpoint) CHECKPOINT=$(realpath "$2"); shift 2 ;;
        --calibration) CALIBRATION=$(realpath "$2"); shift 2 ;;
        --images) IMAGE_DIR=$(realpath "$2"); shift 2 ;;
        --limit) LIMIT=$2; shift 2 ;;
        --epochs) EPOCHS=$2; shift 2 ;;
        --venv) VENV=$2; shift 2 ;;
        --wheel) WHEEL=$(realpath "$2"); shift 2 ;;
        --root) ROOT=$(realpath "$2"); shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --report) REPORT=$(realpath -m "$2"); shift 2 ;;
        --keep-results) KEEP=1; shift ;;   # add to WORK/results (check_arm64.sh's run)
        --no-report) RENDER=0; shift ;;
        -h|--help) usage ;;
        *) echo "check_tflite_runtime.sh: unknown argument $1" >&2; usage ;;
    esac
done
HOST_PY=${HOST_PY:-$REPO/.venv/bin/python}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
RESULTS=$WORK/results
REPORT=${REPORT:-$WORK/REPORT.md}
VENV=${VENV:-$WORK/venv-tflrt214}
# shellcheck source=common.sh
. "$HERE/common.sh"
[ -x "$HOST_PY" ] || die "no x86 Python with edgelite at $HOST_PY: pass --host-python PY"
"$HOST_PY" -c "import edgelite, ai_edge_litert" 2>/dev/null \
    || die "$HOST_PY cannot import edgelite and ai_edge_litert (the LiteRT reference)"
if [ "$KEEP" = 0 ]; then
    rm -rf "$RESULTS" && mkdir -p "$RESULTS"
    record run command "benchmarks/pi/check_tflite_runtime.sh${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}}"
    record run date "$(date -u '+%Y-%m-%d %H:%M UTC')"
    record machine host "$(uname -srm), Debian $(cat /etc/debian_version)"
fi
mkdir -p "$RESULTS"
if [ -z "$ARTIFACT_DIR" ]; then
    run_demo "$HOST_PY" "$EPOCHS"  # sets ARTIFACT_DIR and CHECKPOINT
    step "edgelite demo --epochs $EPOCHS (x86)"
fi
[ -s "$RESULTS/images.txt" ] || pick_images "$IMAGE_DIR" "$LIMIT"
TFLRT_PY=$VENV/bin/python

# ------------------------------------------------------------- 1. the old runtime's venv
if [ ! -x "$TFLRT_PY" ]; then
    log "creating $VENV"
    python3.11 -m venv "$VENV" \
        || die "python3.11 -m venv failed (apt-get install python3-venv); tflite-runtime 2.14 has wheels for Python <= 3.11"
fi
log "pip install tflite-runtime==2.14.0 'numpy<2' pillow click rich into $VENV"
"$TFLRT_PY" -m pip install -q --disable-pip-version-check tflite-runtime==2.14.0 "numpy<2" pillow click rich
if [ -z "$WHEEL" ]; then
    build_wheel "$HOST_PY" "$WORK/wheel"
fi
"$TFLRT_PY" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$WHEEL"
# the light runtime prefers ai-edge-litert: it must be absent for the fallback to be tested
"$TFLRT_PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('ai_edge_litert') is not None)" \
    || die "$VENV has ai-edge-litert installed: the tflite_runtime fallback would not be used"
"$TFLRT_PY" -c "import click, rich, tflite_runtime.interpreter" \
    || die "$VENV lacks click, rich or tflite_runtime"
step "tflite-runtime 2.14 venv"

# the same in the arm64 userland: a folder of its own, run with `python -S` so that
# ROOT's dist-packages (ai-edge-litert, numpy 2) stay out of sys.path
if [ -n "$ROOT" ]; then
    GUEST_PY=$ROOT/usr/bin/python3.11-qemu
    [ -x "$GUEST_PY" ] || die "--root: no $GUEST_PY (run build_userland.sh first)"
    TARGET=$ROOT/opt/tflrt214
    CACHE=${EDGELITE_PI_CACHE:-$WORK/cache}/wheels-tflrt214
    REQS=(tflite-runtime==2.14.0 "numpy<2" pillow==13.0.0 click==8.5.1 rich==15.0.0)
    GUEST_PIP=("$GUEST_PY" -m pip --disable-pip-version-check --no-input --no-cache-dir)
    # --target: pip's conflict check still sees ROOT's dist-packages (numpy 2), hence --no-warn-conflicts
    GUEST_PIPI=("${GUEST_PIP[@]}" install -q --no-compile --no-warn-conflicts --root-user-action=ignore)
    if [ ! -e "$CACHE/.ok" ]; then
        log "pip download (emulated aarch64) ${REQS[*]} -> $CACHE"
        "${GUEST_PIP[@]}" download -q --only-binary=:all: -d "$CACHE" "${REQS[@]}" >&2
        touch "$CACHE/.ok"
    fi
    if [ ! -e "$TARGET/.ok" ]; then
        log "pip install --target $TARGET (emulated)"
        rm -rf "$TARGET"
        "${GUEST_PIPI[@]}" --no-index --find-links "$CACHE" --target "$TARGET" "${REQS[@]}" >&2
        touch "$TARGET/.ok"
    fi
    rm -rf "$TARGET"/edgelite "$TARGET"/edgelite-*.dist-info
    "${GUEST_PIPI[@]}" --no-deps --upgrade --target "$TARGET" "$WHEEL" >&2
    GUEST_TFLRT=(env PYTHONPATH="$TARGET" "$GUEST_PY" -S)
    "${GUEST_TFLRT[@]}" -c "import importlib.util as u, sys; sys.exit(u.find_spec('ai_edge_litert') is not None)" \
        || die "ai-edge-litert is importable with python -S in $ROOT: the fallback would not be used"
    step "tflite-runtime 2.14 in the arm64 userland"
fi

# ------------------------------------------------------------- 2. default artifacts
[ -s "$RESULTS/scores-x86.json" ] || \
    "$HOST_PY" "$HERE/pi_check.py" scores "$ARTIFACT_DIR" --images "$RESULTS/images.txt" --out "$RESULTS/scores-x86.json"
log "tflite-runtime 2.14: scores of every .tflite artifact"
"$TFLRT_PY" "$HERE/pi_check.py" scores "$ARTIFACT_DIR" --formats tflite --images "$RESULTS/images.txt" \
    --out "$RESULTS/scores-tflrt214.json"
if [ -n "$ROOT" ]; then
    log "tflite-runtime 2.14 (emulated arm64): scores of every .tflite artifact"
    "${GUEST_TFLRT[@]}" "$HERE/pi_check.py" scores "$ARTIFACT_DIR" --formats tflite --images "$RESULTS/images.txt" \
        --out "$RESULTS/scores-tflrt214-arm64.json"
fi

# min runtime per artifact, as `edgelite info` reads it from the op versions
min_runtimes() {  # DIR OUT.json
    local artifact
    for artifact in "$1"/*.tflite; do
        printf '%s\t' "$(basename "$artifact")"
        "$HOST_PY" -m edgelite info --json "$artifact" \
            | "$HOST_PY" -c "import json, sys; print(json.load(sys.stdin).get('min_runtime') or '-')"
    done | "$HOST_PY" -c "import json, sys; print(json.dumps(dict(l.rstrip('\n').split('\t') for l in sys.stdin)))" >"$2"
}
min_runtimes "$ARTIFACT_DIR" "$RESULTS/info.json"

# what a user sees: the CLI on the dynamic-range artifact
DYNAMIC=$(find "$ARTIFACT_DIR" -maxdepth 1 -name '*_dynamic.tflite' | head -n1)
if [ -n "$DYNAMIC" ]; then
    rc=0
    "$TFLRT_PY" -m edgelite predict "$DYNAMIC" "$(head -n1 "$RESULTS/images.txt")" \
        >/dev/null 2>"$RESULTS/dynamic-cli.txt" || rc=$?
    echo "$rc" >"$RESULTS/dynamic-cli.rc"
fi
step "tflite-runtime 2.14: default artifacts"

# ------------------------------------------------------------- 3. convert --compat tflite-runtime-2.14
if [ -z "$CHECKPOINT" ]; then
    echo "no --checkpoint given" >"$RESULTS/compat-skipped.txt"
elif ! "$HOST_PY" -m edgelite convert --help | grep -q -- '--compat'; then
    echo "this edgelite's convert has no --compat option yet" >"$RESULTS/compat-skipped.txt"
else
    COMPAT=$WORK/compat
    rm -rf "$COMPAT"
    CMD=(edgelite convert "$CHECKPOINT" --out "$COMPAT" --format tflite --compat tflite-runtime-2.14
         --calibration "$CALIBRATION" --check "$IMAGE_DIR")
    echo "${CMD[*]}" >"$RESULTS/compat-command.txt"
    log "${CMD[*]}"
    "$HOST_PY" -m "${CMD[@]}" >"$RESULTS/compat-convert.log" 2>&1 \
        || { tail -n 5 "$RESULTS/compat-convert.log" >&2; die "edgelite convert --compat failed"; }
    "$HOST_PY" "$HERE/pi_check.py" scores "$COMPAT" --formats tflite --images "$RESULTS/images.txt" \
        --out "$RESULTS/scores-compat-x86.json"
    "$TFLRT_PY" "$HERE/pi_check.py" scores "$COMPAT" --formats tflite --images "$RESULTS/images.txt" \
        --out "$RESULTS/scores-compat-tflrt214.json"
    if [ -n "$ROOT" ]; then
        log "tflite-runtime 2.14 (emulated arm64): the --compat artifacts"
        "${GUEST_TFLRT[@]}" "$HERE/pi_check.py" scores "$COMPAT" --formats tflite --images "$RESULTS/images.txt" \
            --out "$RESULTS/scores-compat-tflrt214-arm64.json"
    fi
    min_runtimes "$COMPAT" "$RESULTS/compat-info.json"
    step "tflite-runtime 2.14: convert --compat and its artifacts"
fi

if [ "$RENDER" = 1 ]; then
    python3 "$HERE/pi_check.py" report "$RESULTS" --out "$REPORT"
fi
