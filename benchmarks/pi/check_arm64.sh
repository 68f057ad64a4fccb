#!/usr/bin/env bash
# Prove edgelite's light runtime on arm64 (Raspberry Pi OS 64-bit = Debian bookworm,
# Python 3.11) under qemu user emulation, compare with x86, write benchmarks/pi/REPORT.md.
#
#   usage: check_arm64.sh [--host-python PY] [--root DIR] [--work DIR] [--cpus LIST]
#                         [--artifacts DIR [--checkpoint FILE]] [--also-artifacts DIR]...
#                         [--images DIR] [--limit N] [--epochs N] [--bench-runs N] [--no-bench]
#                         [--no-tflite-runtime] [--measure-tensorflow] [--report FILE]
#   (as root, on Debian bookworm x86_64)
#
#   --host-python  x86 Python with edgelite[convert,train] (trains the demo, converts,
#                  and is the x86 reference); default: the repository's .venv if it has
#                  them, else create WORK/venv-x86 from the wheel
#   --work         every file of the run: wheel, demo, results/ (replaced each run), the
#                  report, and by default the userland and the download cache
#                  (default /var/tmp/edgelite-pi/run)
#   --root         the arm64 userland (default WORK/root)
#   --cpus         emulated CPUs, in order (default cortex-a72,cortex-a76: Raspberry Pi 4
#                  and 5); each gets its own agreement table; bench and tflite-runtime
#                  run under the first
#   --artifacts    test these .tflite/.onnx files instead of `edgelite demo`'s
#   --checkpoint   the Keras file they came from (for convert --compat; demo: automatic)
#   --also-artifacts  check this folder's .tflite/.onnx files too (repeatable)
#   --images       images to predict (default examples/clothing-mini/validation)
#   --limit        images per artifact (default 50)
#   --epochs       demo training epochs (default 3)
#   --bench-runs   timed calls per artifact for the emulated `edgelite bench` (default 20)
#   --no-tflite-runtime  skip check_tflite_runtime.sh (the "tflite-runtime 2.14" section)
#   --measure-tensorflow download TensorFlow's aarch64 wheels (~325 MiB) to size them
#   --report       where to write the report (default WORK/REPORT.md; the tracked one
#                  is benchmarks/pi/REPORT.md)
#   EDGELITE_PI_CACHE  download cache for .debs and wheels (default WORK/cache)
#
# Steps: build edgelite's wheel (pip wheel --no-deps), build_userland.sh ROOT WHEEL
# (arm64 Debian python3.11 + numpy, pillow, click, rich, ai-edge-litert, onnxruntime;
# no TensorFlow), `edgelite demo --epochs N` on x86 for artifacts, then per artifact
# on x86 and on emulated arm64 (each CPU of --cpus): `edgelite predict --json` and
# full-precision scores; `edgelite bench` emulated; install sizes;
# check_tflite_runtime.sh; the report.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$REPO/benchmarks/pi
HOST_PY="" ROOT="" WORK=/var/tmp/edgelite-pi/run CPUS=cortex-a72,cortex-a76
ARTIFACT_DIR="" CHECKPOINT="" IMAGE_DIR=$REPO/examples/clothing-mini/validation LIMIT=50 EPOCHS=3
BENCH_RUNS=20 BENCH=1 TFLRT=1 MEASURE_TF=0 REPORT="" EXTRA_DIRS=()
usage() { sed -n '2,39p' "$0" >&2; exit 2; }
ORIG_ARGS=("$@")
while [ $# -gt 0 ]; do
    case $1 in
        --host-python) HOST_PY=$2; shift 2 ;;
        --root) ROOT=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --cpus) CPUS=$2; shift 2 ;;
        --also-artifacts) EXTRA_DIRS+=("$(realpath "$2")"); shift 2 ;;
        --artifacts) ARTIFACT_DIR=$(realpath "$2"); shift 2 ;;
        --checkpoint) CHECKPOINT=$(realpath "$2"); shift 2 ;;
        --images) IMAGE_DIR=$(realpath "$2"); shift 2 ;;
        --limit) LIMIT=$2; shift 2 ;;
        --epochs) EPOCHS=$2; shift 2 ;;
        --bench-runs) BENCH_RUNS=$2; shift 2 ;;
        --no-bench) BENCH=0; shift ;;
        --no-tflite-runtime) TFLRT=0; shift ;;
        --measure-tensorflow) MEASURE_TF=1; shift ;;
        --report) REPORT=$(realpath -m "$2"); shift 2 ;;
        -h|--help) usage ;;
        *) echo "check_arm64.sh: unknown argument $1" >&2; usage ;;
    esac
done
RESULTS=$WORK/results
# shellcheck source=common.sh
. "$HERE/common.sh"
[ "$(id -u)" = 0 ] || die "run as root (build_userland.sh uses apt-get and dpkg)"
[ "$(dpkg --print-architecture)" = amd64 ] || die "needs an x86_64 (amd64) Debian host"
[ "$LIMIT" -ge 50 ] || die "--limit must be at least 50 (the issue asks for 50 images per artifact)"
[ -d "$IMAGE_DIR" ] || die "--images: no such folder: $IMAGE_DIR"
IFS=, read -r -a CPU_LIST <<<"$CPUS"
for cpu in "${CPU_LIST[@]}"; do
    case $cpu in cortex-a72|cortex-a76) ;; *) die "--cpus: $cpu is not one of cortex-a72, cortex-a76" ;; esac
done
[ ${#CPU_LIST[@]} -gt 0 ] || die "--cpus: name at least one CPU"
for dir in "${EXTRA_DIRS[@]}"; do [ -d "$dir" ] || die "--also-artifacts: no such folder: $dir"; done
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
RESULTS=$WORK/results
rm -rf "$RESULTS" && mkdir -p "$RESULTS"
ROOT=${ROOT:-$WORK/root}
REPORT=${REPORT:-$WORK/REPORT.md}
export EDGELITE_PI_CACHE=${EDGELITE_PI_CACHE:-$WORK/cache}
CACHE=$EDGELITE_PI_CACHE
export QEMU_CPU=${CPU_LIST[0]}

record run command "benchmarks/pi/check_arm64.sh${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}}"
record run date "$(date -u '+%Y-%m-%d %H:%M UTC')"
record machine host "$(uname -srm), Debian $(cat /etc/debian_version)"
record machine cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) CPUs; load average at start $(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------- 1. the wheel and x86 python
NEW_VENV=0
if [ -z "$HOST_PY" ] && "$REPO/.venv/bin/python" -c "import edgelite, ai_edge_litert, onnxruntime, tensorflow" \
    2>/dev/null; then
    HOST_PY=$REPO/.venv/bin/python
fi
if [ -z "$HOST_PY" ]; then
    HOST_PY=$WORK/venv-x86/bin/python
    if [ ! -x "$HOST_PY" ]; then
        python3 -c "import ensurepip" 2>/dev/null || {
            log "apt-get install python3-venv"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        }
        python3 -m venv "$WORK/venv-x86"
        NEW_VENV=1
    fi
fi
log "building edgelite's wheel from $REPO"
build_wheel "$HOST_PY" "$WORK/wheel"
if [ "$NEW_VENV" = 1 ]; then
    log "installing edgelite[convert,train] into $WORK/venv-x86 (TensorFlow: a few minutes)"
    # the same pins as the arm64 userland (build_userland.sh), so both sides run the same versions
    "$HOST_PY" -m pip install -q --disable-pip-version-check "${WHEEL}[convert,train]" numpy==2.4.6 \
        pillow==13.0.0 click==8.5.1 rich==15.0.0 ai-edge-litert==2.3.0 onnxruntime==1.32.0
fi
"$HOST_PY" -c "import edgelite, ai_edge_litert, onnxruntime" 2>/dev/null \
    || die "$HOST_PY cannot import edgelite, ai_edge_litert and onnxruntime (pip install 'edgelite[convert,train]')"
HOST=("$HOST_PY" -m edgelite)
step "build the edgelite wheel"

# ------------------------------------------------------------- 2. arm64 userland
log "build_userland.sh $ROOT $(basename "$WHEEL")"
EDGELITE_PI_SMOKE=0 "$HERE/build_userland.sh" "$ROOT" "$WHEEL" >&2
GUEST_PY=$ROOT/usr/bin/python3.11-qemu
GUEST=("$ROOT/host-bin/edgelite")
[ -x "${GUEST[0]}" ] || die "build_userland.sh did not install edgelite into $ROOT"
"$GUEST_PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is not None)" \
    || die "TensorFlow is importable in $ROOT: the check must run the light runtime only"
record machine emulator "$(qemu-aarch64-static --version | head -n1), QEMU_CPU=${CPUS//,/ then }, user mode (-L $ROOT)"
record machine "arm64 userland" "Debian bookworm arm64 debs: $(tr '\n' ' ' <"$ROOT/.edgelite-pi/debs" | grep -o 'python3.11_[^ ]*')"
step "arm64 userland (build_userland.sh)"

# ------------------------------------------------------------- 3. artifacts and images
if [ -z "$ARTIFACT_DIR" ]; then
    run_demo "$HOST_PY" "$EPOCHS"  # sets ARTIFACT_DIR and CHECKPOINT
    SOURCE_TEXT="\`edgelite demo --epochs $EPOCHS\` on x86 (small CNN trained on examples/clothing-mini/train, $(basename "$CHECKPOINT"))"
    step "edgelite demo --epochs $EPOCHS (x86)"
else
    SOURCE_TEXT=$ARTIFACT_DIR
fi
for dir in "${EXTRA_DIRS[@]}"; do SOURCE_TEXT="$SOURCE_TEXT; and every artifact in $dir"; done
record run artifacts_source "$SOURCE_TEXT"
ARTIFACT_DIRS=("$ARTIFACT_DIR" "${EXTRA_DIRS[@]}")
mapfile -t ARTIFACTS < <(for dir in "${ARTIFACT_DIRS[@]}"; do
    find "$dir" -maxdepth 1 \( -name '*.tflite' -o -name '*.onnx' \) | sort
done)
[ ${#ARTIFACTS[@]} -gt 0 ] || die "no .tflite or .onnx files in ${ARTIFACT_DIRS[*]}"
pick_images "$IMAGE_DIR" "$LIMIT"
record run images_source "$LIMIT images spread over $IMAGE_DIR"

# ------------------------------------------------------------- 4. x86 reference
log "x86: edgelite predict --json and full-precision scores, ${#ARTIFACTS[@]} artifacts x $LIMIT images"
predict_json "$RESULTS/predict-x86" "${HOST[@]}"
"$HOST_PY" "$HERE/pi_check.py" scores "${ARTIFACT_DIRS[@]}" --images "$RESULTS/images.txt" --out "$RESULTS/scores-x86.json"
step "x86: predict + scores"

# ------------------------------------------------------------- 5. emulated arm64, per CPU
for cpu in "${CPU_LIST[@]}"; do
    export QEMU_CPU=$cpu  # the launcher puts the matching /proc/cpuinfo in place
    log "arm64 (emulated $cpu): edgelite predict --json, ${#ARTIFACTS[@]} artifacts x $LIMIT images"
    predict_json "$RESULTS/predict-arm64-$cpu" "${GUEST[@]}"
    step "arm64 $cpu: edgelite predict --json (emulated)"
    log "arm64 (emulated $cpu): full-precision scores"
    "$GUEST_PY" "$HERE/pi_check.py" scores "${ARTIFACT_DIRS[@]}" --images "$RESULTS/images.txt" \
        --out "$RESULTS/scores-arm64-$cpu.json"
    step "arm64 $cpu: scores (emulated)"
done
export QEMU_CPU=${CPU_LIST[0]}

if [ "$BENCH" = 1 ]; then
    log "arm64 (emulated $QEMU_CPU): edgelite bench --runs $BENCH_RUNS"
    if "${GUEST[@]}" bench "${ARTIFACTS[@]}" --runs "$BENCH_RUNS" --warmup 2 --json "$RESULTS/bench-arm64-$QEMU_CPU.json" \
        >"$RESULTS/bench-arm64-$QEMU_CPU.out" 2>"$RESULTS/bench-arm64-$QEMU_CPU.err"; then
        :
    else
        log "warning: edgelite bench failed under emulation: $(tail -n1 "$RESULTS/bench-arm64-$QEMU_CPU.err")"
        # a partial JSON (some rows failed) still goes into the report; exit code 1 alone is not fatal
    fi
    step "arm64 $QEMU_CPU: edgelite bench (emulated)"
fi

# ------------------------------------------------------------- 6. install sizes
python3 "$HERE/pi_check.py" sizes --site "$ROOT/usr/local/lib/python3.11/dist-packages" \
    --wheels "$CACHE/wheels" --out "$RESULTS/sizes-arm64.json"
if [ "$MEASURE_TF" = 1 ]; then
    log "pip download tensorflow (emulated aarch64 pip) -> $CACHE/tensorflow-wheels"
    "$GUEST_PY" -m pip download -q --disable-pip-version-check --only-binary=:all: \
        -d "$CACHE/tensorflow-wheels" tensorflow==2.21.0 >&2
    python3 "$HERE/pi_check.py" sizes --wheels "$CACHE/tensorflow-wheels" --out "$RESULTS/sizes-tensorflow-arm64.json"
fi
step "install sizes"

# ------------------------------------------------------------- 7. tflite-runtime 2.14
if [ "$TFLRT" = 1 ]; then
    COMPAT_ARGS=()
    [ -n "$CHECKPOINT" ] && COMPAT_ARGS=(--checkpoint "$CHECKPOINT")
    "$HERE/check_tflite_runtime.sh" --host-python "$HOST_PY" --artifacts "$ARTIFACT_DIR" --wheel "$WHEEL" \
        --root "$ROOT" --work "$WORK" --keep-results --no-report "${COMPAT_ARGS[@]}"
fi

record machine "load average at end" "$(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$HERE/pi_check.py" report "$RESULTS" --out "$REPORT"
log "done: $REPORT"
