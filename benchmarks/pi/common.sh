# shellcheck shell=bash
# Shared by check_arm64.sh and check_tflite_runtime.sh (sourced, not run).
# Expects: REPO (the repository root), RESULTS (the folder the report is rendered from),
# WORK (the run's folder).

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# step NAME: time since the previous step goes to RESULTS/steps.tsv under NAME
STEP_T0=$(date +%s)
step() {
    local now
    now=$(date +%s)
    printf '%s\t%s\n' "$1" "$((now - STEP_T0))" >>"$RESULTS/steps.tsv"
    STEP_T0=$now
}

# record KEY VALUE: one line of RESULTS/run.tsv or machine.tsv (rendered into the report)
record() { printf '%s\t%s\n' "$2" "$3" >>"$RESULTS/$1.tsv"; }

# build_wheel PYTHON OUTDIR: edgelite's wheel from a copy of the working tree (pip
# builds in-tree and would write build/ and *.egg-info into the repository)
build_wheel() {
    local python=$1 out=$2 src
    src=$(mktemp -d)
    tar -C "$REPO" --exclude=.git --exclude=build --exclude=dist --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=.venv --exclude=examples --exclude=benchmarks -cf - . \
        | tar -C "$src" -xf -
    rm -rf "$out" && mkdir -p "$out"
    "$python" -m pip wheel -q --no-deps --disable-pip-version-check -w "$out" "$src" >&2 \
        || { rm -rf "$src"; die "pip wheel failed for $REPO"; }
    rm -rf "$src"
    WHEEL=$(find "$out" -name 'edgelite-*.whl' | head -n1)
    [ -n "$WHEEL" ] || die "no edgelite wheel in $out"
}

# pick_images DIR N: RESULTS/images.txt, N images spread over DIR's class folders
pick_images() {
    python3 "$REPO/benchmarks/pi/pi_check.py" images "$1" --limit "$2" --out "$RESULTS/images.txt"
}

# predict_json RESULT_DIR EDGELITE...: `edgelite predict --json` on every artifact, one file each
predict_json() {
    local out=$1 artifact images
    shift
    mkdir -p "$out"
    mapfile -t images <"$RESULTS/images.txt"
    for artifact in "${ARTIFACTS[@]}"; do
        "$@" predict --json --top-k 1 "$artifact" "${images[@]}" \
            >"$out/$(basename "$artifact").json" 2>"$out/$(basename "$artifact").err" \
            || log "warning: predict failed for $(basename "$artifact"): $(tail -n1 "$out/$(basename "$artifact").err")"
    done
}

# run_demo PYTHON EPOCHS: `edgelite demo` on x86 in WORK/demo (trains the small CNN on
# examples/clothing-mini and converts it to every artifact); sets ARTIFACT_DIR and CHECKPOINT
run_demo() {
    local python=$1 epochs=$2
    log "edgelite demo --epochs $epochs (x86, trains and converts every artifact)"
    rm -rf "$WORK/demo"
    (cd "$WORK" && "$python" -m edgelite demo --data "$REPO/examples/clothing-mini" --epochs "$epochs" \
        --out "$WORK/demo") >"$RESULTS/demo.log" 2>&1 \
        || { tail -n 20 "$RESULTS/demo.log" >&2; die "edgelite demo failed"; }
    ARTIFACT_DIR=$WORK/demo/artifacts
    CHECKPOINT=$WORK/demo/run/$("$python" -c "import json, sys; print(json.load(open(sys.argv[1]))['source']['file'])" \
        "$ARTIFACT_DIR/manifest.json")
}
