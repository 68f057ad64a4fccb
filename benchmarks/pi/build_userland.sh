#!/usr/bin/env bash
# Build an arm64 (aarch64) Debian bookworm Python 3.11 userland in ROOT and run it
# on an x86_64 host through qemu user-mode emulation (no chroot, no binfmt needed).
#
#   usage: build_userland.sh ROOT [EDGELITE]      (as root, Debian bookworm x86_64)
#
#   ROOT      target directory, e.g. /work/pi-root (keep it outside the repo)
#   EDGELITE  optional: an edgelite .whl, an sdist (.tar.gz/.zip) or a source dir;
#             installed into ROOT with `pip install --no-deps` (its dependencies
#             are the wheels installed here).
#
# Environment:
#   EDGELITE_PI_CACHE   download cache (default /var/cache/edgelite-pi): debs/, wheels/
#   EDGELITE_PI_REQS    aarch64 wheels to install (default: pinned set below)
#   EDGELITE_PI_EXTRA_DEBS  extra arm64 Debian packages to unpack into ROOT
#   EDGELITE_PI_SMOKE=0 skip the import smoke test at the end (saves ~10 s)
#   QEMU_CPU            emulated CPU: cortex-a72 (default, Raspberry Pi 4) or cortex-a76
#                       (Raspberry Pi 5); the launcher honours it per call. Do not use
#                       qemu 7.2's default "max": it advertises SVE/SME and LiteRT's
#                       int8 kernels then return wrong numbers under emulation.
#
# Result: ROOT/usr/bin/python3.11-qemu (host launcher: runs the aarch64 python under
# qemu-aarch64-static -L ROOT), ROOT/host-bin/edgelite when EDGELITE was given.
#
# Steps: (1) apt-get install qemu-user-static, (2) dpkg --add-architecture arm64,
# apt-get update, apt-get download the arm64 .debs, dpkg -x them into ROOT,
# (3) pip from Debian's python3-pip-whl unpacked into ROOT, (4) aarch64 wheels
# downloaded/installed by that pip running under emulation, (5) optional edgelite.
# Every step is skipped on a second run when its inputs are unchanged.
set -euo pipefail

die() { echo "build_userland: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then sed -n '2,27p' "$0"; exit 2; fi
[ "$(id -u)" = 0 ] || die "run as root (apt-get, dpkg)"
[ "$(dpkg --print-architecture)" = amd64 ] || die "host must be amd64 (got $(dpkg --print-architecture))"

mkdir -p "$1"
ROOT=$(cd "$1" && pwd)
EDGELITE_SRC=${2:-}
CACHE=${EDGELITE_PI_CACHE:-/var/cache/edgelite-pi}
REQS=${EDGELITE_PI_REQS:-"numpy==2.4.6 pillow==13.0.0 click==8.5.1 rich==15.0.0 ai-edge-litert==2.3.0 onnxruntime==1.32.0"}
export QEMU_CPU=${QEMU_CPU:-cortex-a72}
STATE=$ROOT/.edgelite-pi
mkdir -p "$CACHE/debs" "$CACHE/wheels" "$STATE"
T0=$(date +%s)

# Debian bookworm arm64 packages. REQUIRED is the smallest set with which python3.11
# starts and imports numpy, PIL, ai_edge_litert and onnxruntime (python3.11 itself
# needs libexpat1/zlib1g, ctypes needs libffi8, the C++ wheels need libstdc++6 and
# libgcc-s1). STDLIB adds the stdlib modules pip and ordinary code expect (ssl for
# HTTPS, bz2, lzma, sqlite3, crypt, uuid, mimetypes data). The full Debian Depends
# closure would also pull ncurses/readline/libnsl2+krb5/libdb5.3 (curses, readline,
# nis, dbm) - not needed here.
ARM64_REQUIRED="python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
  libc6 libgcc-s1 libstdc++6 libexpat1 zlib1g libffi8"
ARM64_STDLIB="libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libcrypt1 libuuid1"
ALL_PKGS="media-types python3-pip-whl"   # Architecture: all
PKGS=""
for p in $ARM64_REQUIRED $ARM64_STDLIB ${EDGELITE_PI_EXTRA_DEBS:-}; do PKGS="$PKGS $p:arm64"; done
PKGS="$PKGS $ALL_PKGS"

# ---------------------------------------------------------------- 1. qemu
if ! command -v qemu-aarch64-static >/dev/null; then
    log "installing qemu-user-static"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null
fi
QEMU=$(command -v qemu-aarch64-static)

# ---------------------------------------------------------------- 2. arm64 debs
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "dpkg --add-architecture arm64"
    dpkg --add-architecture arm64
fi
if ! apt-cache show python3.11:arm64 >/dev/null 2>&1; then
    log "apt-get update (arm64 package lists)"
    apt-get update -qq
fi
# file names apt would download now (no network); fetch only the missing ones
# shellcheck disable=SC2086
URIS=$(apt-get download --print-uris $PKGS) || die "apt-get download --print-uris failed"
DEBS=$(awk '{print $2}' <<<"$URIS" | sort)
MISSING=""
while read -r _uri file _; do
    [ -s "$CACHE/debs/$file" ] || MISSING="$MISSING $file"
done <<<"$URIS"
if [ -n "$MISSING" ]; then
    log "apt-get download:$(wc -w <<<"$MISSING") .debs -> $CACHE/debs"
    # map missing file names back to package names (name_version_arch.deb)
    NEED=""
    for f in $MISSING; do
        name=${f%%_*}; arch=${f##*_}; arch=${arch%.deb}
        [ "$arch" = all ] && NEED="$NEED $name" || NEED="$NEED $name:$arch"
    done
    # shellcheck disable=SC2086
    (cd "$CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root $NEED >/dev/null)
fi
if [ "$(cat "$STATE/debs" 2>/dev/null)" != "$DEBS" ]; then
    log "dpkg -x $(wc -l <<<"$DEBS") .debs -> $ROOT"
    for f in $DEBS; do dpkg -x "$CACHE/debs/$f" "$ROOT"; done
    printf '%s\n' "$DEBS" >"$STATE/debs"
fi
[ -x "$ROOT/usr/bin/python3.11" ] || die "no $ROOT/usr/bin/python3.11 after unpacking"

# A fake /proc/cpuinfo for the guest. qemu 7.2 passes the host's x86 /proc/cpuinfo
# through; onnxruntime's cpuinfo library then finds no ARM processor and segfaults
# on import. With -L ROOT, qemu opens ROOT/proc/cpuinfo instead. One file per
# emulated CPU, one entry per host CPU so counts agree with /sys; the launcher
# below puts the one of its QEMU_CPU in place: cortex-a72 describes a Raspberry Pi 4,
# cortex-a76 a Raspberry Pi 5 (ARMv8.2 with the dot-product instructions, asimddp).
NCPU=$(nproc --all)
mkdir -p "$ROOT/proc"
write_cpuinfo() {  # CPU FEATURES VARIANT PART REVISION BOARD
    local i
    for ((i = 0; i < NCPU; i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\n' "$i" "$2"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
            "$3" "$4" "$5"
    done
    printf '%s\n' "$6"
} 
write_cpuinfo cortex-a72 "fp asimd evtstrm crc32 cpuid" 0x0 0xd08 3 \
    "$(printf 'Hardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1 (qemu-user emulation)')" \
    >"$ROOT/proc/cpuinfo-cortex-a72"
write_cpuinfo cortex-a76 \
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" \
    0x4 0xd0b 1 "$(printf 'Revision\t: d04170\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0 (qemu-user emulation)')" \
    >"$ROOT/proc/cpuinfo-cortex-a76"
[ -e "$ROOT/proc/cpuinfo-$QEMU_CPU" ] || die "QEMU_CPU=$QEMU_CPU: no cpuinfo for it (cortex-a72 or cortex-a76)"
cp "$ROOT/proc/cpuinfo-$QEMU_CPU" "$ROOT/proc/cpuinfo"

# Host-side launcher ROOT/usr/bin/python3.11-qemu (a /bin/sh script the host runs).
# qemu's -0 sets the guest's argv[0] to the launcher, so sys.executable is the
# launcher and code that re-executes sys.executable (pip's build isolation,
# edgelite bench's worker subprocess) works without binfmt_misc. Without -0,
# sys.executable is the aarch64 ELF and such a subprocess fails with
# "[Errno 8] Exec format error: 'ROOT/usr/bin/python3.11'".
cat >"$ROOT/usr/bin/python3.11-qemu" <<LAUNCHER
#!/bin/sh
# run ROOT's aarch64 python3.11 under qemu user emulation (generated by build_userland.sh)
export QEMU_CPU=\${QEMU_CPU:-cortex-a72}
# the guest's /proc/cpuinfo must describe the CPU qemu emulates (cpuinfo-<cpu>, written above)
cmp -s "$ROOT/proc/cpuinfo-\$QEMU_CPU" "$ROOT/proc/cpuinfo" || cp "$ROOT/proc/cpuinfo-\$QEMU_CPU" "$ROOT/proc/cpuinfo"
exec "$QEMU" -L "$ROOT" -0 "\$0" "$ROOT/usr/bin/python3.11" "\$@"
LAUNCHER
chmod +x "$ROOT/usr/bin/python3.11-qemu"
mkdir -p "$ROOT/host-bin"
ln -sfn ../usr/bin/python3.11-qemu "$ROOT/host-bin/python3.11"
PY="$ROOT/usr/bin/python3.11-qemu"

# ---------------------------------------------------------------- 3. pip
# Debian strips ensurepip (python3.11-venv) and refuses it outside a venv; pip's
# wheel from python3-pip-whl is pure Python: unpack it into dist-packages.
SITE_DEB=$ROOT/usr/lib/python3/dist-packages
PIPWHL=$(find "$ROOT/usr/share/python-wheels" -name 'pip-*.whl' 2>/dev/null | sort | tail -n1)
[ -n "$PIPWHL" ] || die "pip wheel missing (python3-pip-whl)"
if [ "$(cat "$STATE/pip" 2>/dev/null)" != "$(basename "$PIPWHL")" ]; then
    log "unpacking $(basename "$PIPWHL") into $SITE_DEB"
    mkdir -p "$SITE_DEB"
    "$PY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$PIPWHL" "$SITE_DEB"
    basename "$PIPWHL" >"$STATE/pip"
fi
PIP=("$PY" -m pip --disable-pip-version-check --no-input --no-cache-dir)
PIPI=("${PIP[@]}" install --root-user-action=ignore --break-system-packages --no-warn-script-location --progress-bar off)

compile_pyc() {  # same magic number needed: only with a host CPython 3.11
    if command -v python3.11 >/dev/null; then
        python3.11 -m compileall -q "$1" >/dev/null || true
    fi
}

# ---------------------------------------------------------------- 4. aarch64 wheels
# pip runs inside the emulator, so it picks cp311 manylinux aarch64 wheels and
# evaluates markers as an aarch64 machine would. Installed to ROOT/usr/local/lib/
# python3.11/dist-packages (Debian's place for pip installs, on sys.path).
REQKEY=$(printf '%s' "$REQS" | tr -s ' \n' '\n' | sort | sha256sum | cut -c1-16)
if [ ! -e "$CACHE/wheels/.ok-$REQKEY" ]; then
    log "pip download (emulated) $REQS -> $CACHE/wheels"
    # shellcheck disable=SC2086
    "${PIP[@]}" download -q --only-binary=:all: -d "$CACHE/wheels" $REQS
    touch "$CACHE/wheels/.ok-$REQKEY"
fi
if [ "$(cat "$STATE/reqs" 2>/dev/null)" != "$REQKEY" ]; then
    log "pip install (emulated, offline from cache) $REQS"
    # byte-compiling under emulation is most of pip's time: skip it and let the
    # host's python3.11 write the (architecture-independent) .pyc files instead
    # shellcheck disable=SC2086
    "${PIPI[@]}" -q --no-compile --no-index --find-links "$CACHE/wheels" $REQS
    compile_pyc "$ROOT/usr/local/lib/python3.11/dist-packages"
    echo "$REQKEY" >"$STATE/reqs"
fi

# ---------------------------------------------------------------- 5. edgelite
RUN_EDGELITE=""
if [ -n "$EDGELITE_SRC" ]; then
    [ -e "$EDGELITE_SRC" ] || die "no such file or directory: $EDGELITE_SRC"
    SRC=$(realpath "$EDGELITE_SRC")
    if [ -d "$SRC" ]; then
        # build from a copy: pip builds in-tree and would write build/ and
        # *.egg-info into the caller's source tree
        TMPSRC=$(mktemp -d)
        trap 'rm -rf "$TMPSRC"' EXIT
        tar -C "$SRC" --exclude=.git --exclude=build --exclude=dist --exclude='*.egg-info' \
            --exclude=__pycache__ --exclude=.venv -cf - . | tar -C "$TMPSRC" -xf -
        SRC=$TMPSRC
    fi
    # skip the (slow, emulated) reinstall when the wheel/sdist/tree is unchanged
    if [ -d "$SRC" ]; then
        ELKEY=$(cd "$SRC" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-32)
    else
        ELKEY=$(sha256sum "$SRC" | cut -c1-32)
    fi
    if [ "$(cat "$STATE/edgelite" 2>/dev/null)" != "$ELKEY" ] \
        || [ ! -d "$ROOT/usr/local/lib/python3.11/dist-packages/edgelite" ]; then
        log "pip install --no-deps (emulated) $EDGELITE_SRC"
        # an sdist/dir gets its build deps (setuptools, wheel) from the index via build isolation
        "${PIPI[@]}" -q --no-compile --no-deps --force-reinstall "$SRC"
        compile_pyc "$ROOT/usr/local/lib/python3.11/dist-packages/edgelite"
        echo "$ELKEY" >"$STATE/edgelite"
    else
        log "edgelite unchanged, already installed"
    fi
    SITE=$ROOT/usr/local/lib/python3.11/dist-packages
    if [ -e "$SITE/edgelite/__main__.py" ]; then
        RUN_EDGELITE="$PY -m edgelite"
    elif [ -e "$ROOT/usr/local/bin/edgelite" ]; then
        # pip's console-script file is a Python script: hand it to the interpreter
        RUN_EDGELITE="$PY $ROOT/usr/local/bin/edgelite"
    else
        echo "warning: edgelite installed but neither edgelite/__main__.py nor the edgelite console script exists" >&2
    fi
    if [ -n "$RUN_EDGELITE" ]; then
        cat >"$ROOT/host-bin/edgelite" <<EOF
#!/bin/sh
# run edgelite inside the emulated aarch64 userland (generated by build_userland.sh)
exec $RUN_EDGELITE "\$@"
EOF
        chmod +x "$ROOT/host-bin/edgelite"
    fi
fi

# ---------------------------------------------------------------- smoke test
if [ "${EDGELITE_PI_SMOKE:-1}" != 0 ]; then
log "smoke test (QEMU_CPU=$QEMU_CPU)"
"$PY" - <<'EOF'
import platform, sys
import numpy, PIL, onnxruntime
import ai_edge_litert.interpreter
from importlib.metadata import version
print(f"  python {platform.python_version()} on {platform.machine()} ({sys.executable})")
print("  " + ", ".join(f"{n} {version(n)}" for n in
      ("numpy", "pillow", "click", "rich", "ai-edge-litert", "onnxruntime")))
print("  onnxruntime providers:", onnxruntime.get_available_providers())
EOF
if [ -n "$RUN_EDGELITE" ]; then
    "$ROOT/host-bin/edgelite" --help >/dev/null 2>&1 && echo "  edgelite --help: ok" \
        || echo "  warning: 'edgelite --help' exited non-zero" >&2
fi
fi

log "done in $(( $(date +%s) - T0 ))s; ROOT size $(du -sh "$ROOT" | cut -f1)"
cat <<MSG

Run Python inside the emulated arm64 userland:
  $PY -c "import ai_edge_litert.interpreter, onnxruntime, numpy, PIL"
which runs exactly:
  QEMU_CPU=$QEMU_CPU $QEMU -L $ROOT -0 $PY $ROOT/usr/bin/python3.11 -c "..."
(plain '$QEMU -L $ROOT $ROOT/usr/bin/python3.11 ...' works too, except for code
 that starts sys.executable subprocesses; keep QEMU_CPU=cortex-a72 or cortex-a76, see header)
MSG
if [ -n "$RUN_EDGELITE" ]; then
    cat <<MSG
Run edgelite inside it:
  $RUN_EDGELITE ...
which runs exactly:
  QEMU_CPU=$QEMU_CPU $QEMU -L $ROOT -0 $PY $ROOT/usr/bin/python3.11 ${RUN_EDGELITE#"$PY "} ...
(also: $ROOT/host-bin/edgelite ...)
MSG
fi
