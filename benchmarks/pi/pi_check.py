"""Helpers for check_arm64.sh and check_tflite_runtime.sh: scores, sizes, the report.

usage: pi_check.py images DIR --limit N --out LIST
       pi_check.py scores ARTIFACT_DIR... --images LIST --out JSON [--formats tflite,onnx]
       pi_check.py sizes [--site SITE] --wheels DIR --out JSON
       pi_check.py report RESULTS_DIR --out REPORT.md

`scores` is the only part that needs edgelite; it runs under whichever Python
calls it (x86 venv, the emulated arm64 userland, the tflite-runtime 2.14 venv)
and records every class score at full float32 precision, computed exactly as
`edgelite predict` does (prepare, run, class_scores, one image per call).
The other commands use the standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import zipfile
from importlib.metadata import distributions
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def die(message: str) -> None:
    sys.exit(f"pi_check: {message}")


def write_atomic(path: Path, text: str) -> None:
    """Write next to the target, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=1) + "\n")


# ---------------------------------------------------------------- images
def pick_images(folder: Path, limit: int) -> list[Path]:
    """`limit` images spread evenly over the sorted list, so every class folder is sampled."""
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if len(found) < limit:
        die(f"{folder}: need at least {limit} images, found {len(found)}")
    return [found[i * len(found) // limit] for i in range(limit)]


def cmd_images(args) -> None:
    images = pick_images(Path(args.dir).resolve(), args.limit)
    write_atomic(Path(args.out), "".join(f"{p}\n" for p in images))


# ---------------------------------------------------------------- scores
def list_artifacts(folder: Path, formats: list[str]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lstrip(".") in formats)


def cmd_scores(args) -> None:
    import importlib.util

    from edgelite.bench.machine import versions
    from edgelite.runtime import load

    images = [Path(line) for line in Path(args.images).read_text().split()]
    artifacts = [path for folder in args.artifacts for path in list_artifacts(Path(folder), args.formats.split(","))]
    if not artifacts:
        die(f"{', '.join(args.artifacts)}: no {args.formats} artifacts")
    prepared = {}  # (height, width, interpolation) -> pixels per image: decode once per size
    rows = []
    for path in artifacts:
        row = {"artifact": path.name, "loaded": False}
        start = time.perf_counter()
        try:
            model = load(path)
        except Exception as exc:  # the report shows why it failed, the other artifacts still run
            row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            print(f"  {path.name}: load failed: {row['error']}", file=sys.stderr)
            continue
        row.update(loaded=True, backend=model.backend_name, load_s=round(time.perf_counter() - start, 3),
                   labels=list(model.labels))
        key = (model.height, model.width, model.interpolation)
        if key not in prepared:
            prepared[key] = [model.prepare(image).pixels for image in images]
        start = time.perf_counter()
        row["scores"] = [model.class_scores(model.run(pixels[None]))[0].tolist() for pixels in prepared[key]]
        row["run_s"] = round(time.perf_counter() - start, 3)
        rows.append(row)
        print(f"  {path.name}: {model.backend_name}, {len(images)} images in {row['run_s']} s", file=sys.stderr)
    write_json(Path(args.out), {
        "machine": platform.machine(), "python": platform.python_version(), "executable": sys.executable,
        "versions": versions(),
        "tensorflow_importable": importlib.util.find_spec("tensorflow") is not None,
        "images": [str(p) for p in images], "artifacts": rows})


# ---------------------------------------------------------------- sizes
def wheel_row(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as z:
        return {"wheel": wheel.name, "download_bytes": wheel.stat().st_size,
                "unpacked_bytes": sum(i.file_size for i in z.infolist())}


def cmd_sizes(args) -> None:
    """Per installed distribution: its wheel's download size, unpacked size, and size on disk.

    Without --site: every wheel in --wheels (a `pip download` of one requirement).
    """
    wheels = Path(args.wheels)
    if not args.site:
        rows = [dict(name=w.name.split("-")[0], **wheel_row(w)) for w in sorted(wheels.glob("*.whl"))]
        write_json(Path(args.out), {"wheels": str(wheels), "distributions": rows})
        return
    site = Path(args.site)
    by_key = {}
    for wheel in wheels.glob("*.whl"):
        name, ver = wheel.name.split("-")[:2]
        by_key[(name.lower().replace("_", "-").replace(".", "-"), ver)] = wheel
    rows = []
    for dist in distributions(path=[str(site)]):
        name = dist.metadata["Name"]
        key = (name.lower().replace("_", "-").replace(".", "-"), dist.version)
        files = [site / f for f in (dist.files or [])]
        row = {"name": name, "version": dist.version,
               "installed_bytes": sum(f.stat().st_size for f in files if f.is_file())}
        if key in by_key:
            row.update(wheel_row(by_key[key]))
        rows.append(row)
    on_disk = sum(f.stat().st_size for f in site.rglob("*") if f.is_file() and not f.is_symlink())
    write_json(Path(args.out), {"site": str(site), "site_bytes_with_pyc": on_disk,
                                "distributions": sorted(rows, key=lambda r: -r["installed_bytes"])})


# ---------------------------------------------------------------- report
def load_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def table(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def argmax(row: list[float]) -> int:
    return max(range(len(row)), key=lambda i: (row[i], -i))  # ties: lowest index, as np.argsort(stable)


def compare_scores(ref: dict, other: dict) -> dict[str, dict]:
    """Per artifact: images, top-1 agreement and the largest |score difference| of other vs ref."""
    refs = {a["artifact"]: a for a in ref["artifacts"]}
    out = {}
    for row in other["artifacts"]:
        base = refs.get(row["artifact"])
        result = {"loaded": row["loaded"], "error": row.get("error"), "backend": row.get("backend")}
        if row["loaded"] and base and base["loaded"]:
            pairs = list(zip(base["scores"], row["scores"]))
            result.update(images=len(pairs),
                          top1_same=sum(argmax(a) == argmax(b) for a, b in pairs),
                          max_diff=max(abs(x - y) for a, b in pairs for x, y in zip(a, b)),
                          min_margin=min(sorted(a)[-1] - sorted(a)[-2] for a, _ in pairs))
        out[row["artifact"]] = result
    return out


def compare_predict(results: Path, name: str, cpu: str) -> tuple[int, int, float] | None:
    """top-1 label agreement and max |diff| of the (6-decimal) top-1 score, CLI on arm64 vs x86."""
    x86 = load_json(results / "predict-x86" / f"{name}.json")
    arm = load_json(results / f"predict-arm64-{cpu}" / f"{name}.json")
    if not x86 or not arm:
        return None
    pairs = list(zip(x86["results"], arm["results"]))
    same = sum(a["predictions"][0]["label"] == b["predictions"][0]["label"] for a, b in pairs)
    diff = max(abs(a["predictions"][0]["score"] - b["predictions"][0]["score"]) for a, b in pairs)
    return same, len(pairs), diff


def pct(same: int, total: int) -> str:
    return f"{same}/{total} ({100 * same / total:.0f}%)" if total else "-"


# the emulated CPUs check_arm64.sh knows, and the board each stands for
CPUS = {"cortex-a72": "Cortex-A72, Raspberry Pi 4", "cortex-a76": "Cortex-A76, Raspberry Pi 5"}
CPU_NOTES = {
    "cortex-a76": "The Cortex-A76 has the Armv8.2 dot-product instructions (`asimddp`, `sdot`/`udot`): "
                  "qemu's cortex-a76 reports them in the guest's hardware capabilities (AT_HWCAP) and the "
                  "guest's /proc/cpuinfo says so too, so XNNPACK (LiteRT) and MLAS (onnxruntime) may choose "
                  "other int8 kernels here than on the Cortex-A72. The table checks the answers whichever "
                  "kernels ran; full-integer artifacts compute in integers and should match x86 exactly.",
}


def emulated_cpus(results: Path) -> list[str]:
    """The CPUs with arm64 scores in `results`, in CPUS order."""
    return [cpu for cpu in CPUS if (results / f"scores-arm64-{cpu}.json").is_file()]


def arm64_section(results: Path, run: dict, cpu: str) -> str:
    x86, arm = load_json(results / "scores-x86.json"), load_json(results / f"scores-arm64-{cpu}.json")
    title = f"## arm64 (emulated {CPUS[cpu]}) vs x86\n\n"
    if not x86 or not arm:
        return title + f"Not run (no scores-x86.json / scores-arm64-{cpu}.json).\n"
    compared = compare_scores(x86, arm)
    rows, failed = [], []
    for name, c in compared.items():
        cli = compare_predict(results, name, cpu)
        cli_text = pct(cli[0], cli[1]) if cli else "not run"
        if c["loaded"] and "images" in c:
            rows.append([f"`{name}`", c["images"], cli_text, pct(c["top1_same"], c["images"]),
                         f"{c['max_diff']:.2e}", f"{c['min_margin']:.2e}", "yes", c["backend"]])
            if c["top1_same"] != c["images"] or (cli and cli[0] != cli[1]):
                failed.append(name)
        else:
            rows.append([f"`{name}`", 0, cli_text, "-", "-", "-", f"**no**: {c['error']}", "-"])
            failed.append(name)
    verdict = (f"**All {len(rows)} artifacts: the same top-1 class on emulated {CPUS[cpu].split(',')[0]} as on "
               "x86 for every image.**" if not failed else f"**Differences in: {', '.join(failed)}.**")
    return (
        title + (CPU_NOTES[cpu] + "\n\n" if cpu in CPU_NOTES else "")
        + f"Each artifact ran on the same {len(arm['images'])} images on both sides. Columns: "
        "top-1 agreement of `edgelite predict --json` (the CLI, as a Pi user runs it) on arm64 vs x86; "
        "top-1 agreement and largest |score difference| over all class scores, from "
        "`edgelite.runtime.load(path)` + `run` + `class_scores` at full float32 precision; "
        "the smallest gap between the best and second-best x86 score over the images (scores of the demo's "
        "briefly trained model are near uniform, so top-1 is a sensitive test; 0 means two classes had the "
        "same quantized score and the lower class index won, on both sides); whether the artifact loaded "
        "under emulation.\n\n"
        + table(["artifact", "images", "top-1 same (CLI)", "top-1 same (scores)", "max \\|score diff\\|",
                 "min top-1 margin", "emulated load OK", "arm64 backend"], rows)
        + f"\n{verdict}\n")


def bench_section(results: Path, cpu: str) -> str:
    head = ("## `edgelite bench` under emulation: NOT Raspberry Pi numbers\n\n"
            "qemu-user translates every aarch64 instruction on an x86 host that is shared with other work. "
            "These latencies say that `edgelite bench` works on arm64; they say nothing about the speed of a Pi "
            "4 or Pi 5 (emulation is one to two orders of magnitude slower than native) and must not be "
            f"quoted as Pi latency. Measured under emulated {CPUS[cpu].split(',')[0]}.\n\n")
    error = results / f"bench-arm64-{cpu}.err"
    bench = load_json(results / f"bench-arm64-{cpu}.json")
    if bench is None:
        reason = error.read_text().strip().splitlines()[-1:] if error.is_file() else ["not run"]
        return head + f"Not measured: `{reason[0] if reason else 'no output'}`.\n"
    rows = []
    for r in bench["rows"]:
        if r.get("error"):
            rows.append([f"`{r['name']}`", r.get("threads", "-"), "-", "-", "-", r["error"]])
            continue
        rows.append([f"`{r['name']}`", r["threads"], f"{r['backend']} {r['backend_version']}",
                     f"{r['latency_ms']['p50']:.1f}", f"{r['load_s']:.2f}", f"{r['runs']} runs"])
    return head + table(["artifact", "threads", "backend", "emulated p50 ms", "emulated load s", "note"], rows)


def sizes_section(results: Path) -> str:
    sizes = load_json(results / "sizes-arm64.json")
    tf = load_json(results / "sizes-tensorflow-arm64.json")
    out = "## Install size on arm64 (aarch64 cp311 wheels)\n\n"
    if not sizes:
        return out + "Not measured.\n"

    def totals(rows):
        with_wheel = [r for r in rows if "download_bytes" in r]
        return (sum(r["download_bytes"] for r in with_wheel), sum(r["unpacked_bytes"] for r in with_wheel),
                len(with_wheel))

    dists = sizes["distributions"]
    light = [d for d in dists if d["name"].lower() != "edgelite"]
    no_ort = [d for d in light if d["name"].lower() != "onnxruntime"]
    rows = []
    for label, group in (("light runtime + onnxruntime (edgelite's dependencies)", light),
                         ("light runtime without onnxruntime", no_ort)):
        down, unpacked, n = totals(group)
        rows.append([label, n, mib(down), mib(unpacked), "this run"])
    if tf:
        down, unpacked, n = totals(tf["distributions"])
        rows.append(["tensorflow==2.21.0 + dependencies", n, mib(down), mib(unpacked), "this run"])
    else:
        rows.append(["tensorflow==2.21.0 + dependencies", 32, "324.9 MiB", "1437.5 MiB (tensorflow alone 1264 MiB)",
                     "earlier run on this host (see below)"])
    out += table(["what", "wheels", "download", "installed (unpacked wheels)", "measured"], rows)
    edgelite = next((d for d in dists if d["name"].lower() == "edgelite"), None)
    out += (f"\nOn disk, ROOT/usr/local/lib/python3.11/dist-packages (the light runtime with onnxruntime, "
            f"edgelite, and the .pyc files): {mib(sizes['site_bytes_with_pyc'])}"
            + (f"; edgelite itself {mib(edgelite['installed_bytes'])}" if edgelite else "") + ".\n")
    out += ("\nMethod: the wheels are the ones the emulated (aarch64) pip downloaded; download = sum of the "
            ".whl file sizes, installed = sum of the uncompressed sizes of their zip entries (what pip writes, "
            "before byte-compiling). "
            + ("TensorFlow's wheels were downloaded the same way in this run (`--measure-tensorflow`).\n" if tf else
               "The TensorFlow row was measured the same way by an earlier run of these tools on this host "
               "(`pip download tensorflow==2.21.0` with the emulated aarch64 pip: cp311 manylinux aarch64 "
               "wheels, 2026-11-25); pass `--measure-tensorflow` to re-measure it (about 325 MiB download).\n"))
    largest = ", ".join(f"{d['name']} {mib(d['installed_bytes'])}" for d in dists[:5])
    return out + f"\nLargest installed: {largest}.\n"


def tflite_runtime_rows(ref: dict, old: dict, info: dict) -> tuple[list[list], list[str]]:
    compared = compare_scores(ref, old)
    rows, problems = [], []
    for name, c in compared.items():
        min_runtime = info.get(name) or "-"
        if c["loaded"] and "images" in c:
            rows.append([f"`{name}`", min_runtime, "yes", c["images"], pct(c["top1_same"], c["images"]),
                         f"{c['max_diff']:.2e}"])
            if c["top1_same"] != c["images"]:
                problems.append(name)
        else:
            rows.append([f"`{name}`", min_runtime, "**no**", 0, "-", "-"])
    return rows, problems


def tflite_runtime_section(results: Path) -> str:
    out = "## tflite-runtime 2.14\n\n"
    old, ref = load_json(results / "scores-tflrt214.json"), load_json(results / "scores-x86.json")
    if not old or not ref:
        return out + "Not run (see check_tflite_runtime.sh).\n"
    v = old["versions"]
    out += (f"x86_64 venv with tflite-runtime {v.get('tflite-runtime')}, numpy {v.get('numpy')}, "
            f"pillow {v.get('pillow')}, no ai-edge-litert (edgelite's runtime then falls back to tflite_runtime), "
            f"edgelite {v.get('edgelite')} installed with `--no-deps`. Reference: the same artifacts under LiteRT "
            f"{ref['versions'].get('ai-edge-litert')} on x86. \"needs\" is the minimum TFLite runtime "
            "`edgelite info` reads from the artifact's op versions.\n\n")
    columns = ["artifact", "needs", "loads in 2.14", "images", "top-1 same as LiteRT", "max \\|score diff\\|"]
    rows, problems = tflite_runtime_rows(ref, old, load_json(results / "info.json") or {})
    out += table(columns, rows)
    errors = [(a["artifact"], a["error"]) for a in old["artifacts"] if not a["loaded"]]
    for name, error in errors:
        out += f"\n`{name}` under tflite-runtime 2.14, from `edgelite.runtime.load`:\n\n    {error}\n"
    cli = results / "dynamic-cli.txt"
    if cli.is_file():
        out += ("\n`edgelite predict` on the dynamic-range artifact in the same venv (stderr, exit code "
                f"{(results / 'dynamic-cli.rc').read_text().strip()}):\n\n"
                + "".join(f"    {line}\n" for line in cli.read_text().strip().splitlines()))
    if problems:
        out += f"\n**Top-1 differs from LiteRT in: {', '.join(problems)}.**\n"
    out += arm64_tflrt_table(results, "scores-tflrt214-arm64.json", ref, columns, "info.json")

    out += "\n### `edgelite convert --compat tflite-runtime-2.14`\n\n"
    skipped = results / "compat-skipped.txt"
    compat_old = load_json(results / "scores-compat-tflrt214.json")
    compat_ref = load_json(results / "scores-compat-x86.json")
    if skipped.is_file():
        return out + f"Not run: {skipped.read_text().strip()}\n"
    if not compat_old or not compat_ref:
        return out + "Not run.\n"
    command = (results / "compat-command.txt").read_text().strip() if (results / "compat-command.txt").is_file() else ""
    out += (f"The same checkpoint converted again with\n\n    {command}\n\n"
            "and each TFLite artifact run under tflite-runtime 2.14 and compared with LiteRT on the same file:\n\n")
    rows, problems = tflite_runtime_rows(compat_ref, compat_old, load_json(results / "compat-info.json") or {})
    out += table(columns, rows)
    default_dyn = next((a for a in ref["artifacts"] if a["artifact"].endswith("_dynamic.tflite") and a["loaded"]), None)
    compat_dyn = next((a for a in compat_old["artifacts"] if a["artifact"].endswith("_dynamic.tflite")), None)
    if default_dyn and compat_dyn and compat_dyn["loaded"]:
        same = sum(argmax(a) == argmax(b) for a, b in zip(default_dyn["scores"], compat_dyn["scores"]))
        out += (f"\nThe compat dynamic-range artifact under tflite-runtime 2.14 against the default dynamic-range "
                f"artifact under LiteRT: top-1 same on {pct(same, len(compat_dyn['scores']))} images "
                "(per-tensor instead of per-channel Dense weights, so scores are not identical).\n")
    if problems:
        out += f"\n**Top-1 differs from LiteRT in: {', '.join(problems)}.**\n"
    out += arm64_tflrt_table(results, "scores-compat-tflrt214-arm64.json", compat_ref, columns, "compat-info.json")
    return out


def arm64_tflrt_table(results: Path, name: str, ref: dict, columns: list[str], info: str) -> str:
    old = load_json(results / name)
    if not old:
        return ""
    rows, problems = tflite_runtime_rows(ref, old, load_json(results / info) or {})
    v = old["versions"]
    text = (f"\nThe same under emulated arm64 (tflite-runtime {v.get('tflite-runtime')} aarch64 wheel with numpy "
            f"{v.get('numpy')}, Python {old['python']}, installed with `pip --target` into a folder of its own "
            "and run with `python3.11 -S`, so ai-edge-litert is not importable), compared with LiteRT on x86:\n\n"
            + table(columns, rows))
    for artifact in old["artifacts"]:
        if not artifact["loaded"]:
            text += f"\n`{artifact['artifact']}` (arm64): `{artifact['error']}`\n"
    if problems:
        text += f"\n**Top-1 differs from LiteRT in: {', '.join(problems)}.**\n"
    return text


def read_tsv(path: Path) -> dict[str, str]:
    """key<TAB>value lines, in order (the shell scripts append them as they go)."""
    if not path.is_file():
        return {}
    return dict(line.split("\t", 1) for line in path.read_text().splitlines() if "\t" in line)


def cmd_report(args) -> None:
    results = Path(args.results)
    run = read_tsv(results / "run.tsv")
    run["machine"], run["steps"] = read_tsv(results / "machine.tsv"), read_tsv(results / "steps.tsv")
    cpus = emulated_cpus(results)
    x86 = load_json(results / "scores-x86.json")
    arm = load_json(results / f"scores-arm64-{cpus[0]}.json") if cpus else None
    old = load_json(results / "scores-tflrt214.json")
    parts = ["# edgelite on arm64 (Raspberry Pi OS 64-bit) and on tflite-runtime 2.14\n",
             f"Written by `{run.get('command', 'benchmarks/pi/check_*.sh')}` on {run.get('date', '?')}; "
             "do not edit by hand, run the script again.\n",
             "Nothing here ran on a Raspberry Pi. The arm64 half runs Debian bookworm's aarch64 Python 3.11 "
             "and the aarch64 wheels under qemu user-mode emulation on an x86_64 host: it proves that the same "
             "artifacts load and give the same answers there, not how fast a Pi is. **Emulated latency is not a "
             "Pi number.**\n",
             "## Machine and versions\n"]
    rows = [[k, v] for k, v in run.get("machine", {}).items()]
    for label, scores in (("x86_64 (reference)", x86), ("arm64 (emulated)", arm), ("x86_64 tflite-runtime venv", old)):
        if scores:
            packages = ", ".join(f"{k} {v}" for k, v in scores["versions"].items())
            tf = "TensorFlow importable" if scores["tensorflow_importable"] else "no TensorFlow"
            rows.append([label, f"Python {scores['python']} ({scores['machine']}): {packages}; {tf}"])
    parts.append(table(["", ""], rows))
    if run.get("artifacts_source"):
        parts.append(f"Artifacts: {run['artifacts_source']}. Images: {run.get('images_source', '?')}.\n")
    for cpu in cpus:
        parts.append(arm64_section(results, run, cpu))
    for cpu in cpus:
        if (results / f"bench-arm64-{cpu}.json").is_file() or (results / f"bench-arm64-{cpu}.err").is_file():
            parts.append(bench_section(results, cpu))
    if arm:
        parts.append(sizes_section(results))
    parts.append(tflite_runtime_section(results))
    if run.get("steps"):
        steps = [[name, seconds] for name, seconds in run["steps"].items()]
        parts.append("## Time taken by this run\n\n" + table(["step", "seconds"], steps))
    write_atomic(Path(args.out), "\n".join(parts))
    print(f"wrote {args.out}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("images", help="pick N images spread over a folder")
    p.add_argument("dir")
    p.add_argument("--limit", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_images)
    p = sub.add_parser("scores", help="full-precision class scores of every artifact (needs edgelite)")
    p.add_argument("artifacts", nargs="+", help="folders of artifacts")
    p.add_argument("--images", required=True, help="file with one image path per line")
    p.add_argument("--out", required=True)
    p.add_argument("--formats", default="tflite,onnx")
    p.set_defaults(func=cmd_scores)
    p = sub.add_parser("sizes", help="download/unpacked/installed size per distribution")
    p.add_argument("--site", help="an installed site-packages folder")
    p.add_argument("--wheels", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_sizes)
    p = sub.add_parser("report", help="render REPORT.md from a results folder")
    p.add_argument("results")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
