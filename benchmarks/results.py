"""Stage 4 of the suite: turn the measured data into RESULTS.md (tables, targets, int8 findings)."""

from __future__ import annotations

from typing import Any, Optional

FAMILY_TITLES = {"xception": "Xception 299x299", "scratch": "Scratch CNN 150x150"}


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1%}"


def _mb(size: Optional[int]) -> str:
    return "-" if not size else f"{size / 2**20:.1f}"


def _load(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def _table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(cell) for cell in line) + " |" for line in lines]
    return "\n".join(out)


def ok(condition: bool) -> str:
    return "**met**" if condition else "**not met**"


def row_of(rows: list[dict], fmt: str, precision: str, threads: int) -> Optional[dict]:
    return next((r for r in rows if r.get("format") == fmt and r.get("precision") == precision
                 and r["threads"] == threads and not r.get("error")), None)


def model_table(family: str, data: dict, peaks: dict[str, float]) -> str:
    macs = data["macs"]
    lines = []
    for r in data["bench"]["rows"]:
        label = f"{r['name']}"
        if r.get("error"):
            lines.append([label, r.get("backend") or "-", r["threads"], _mb(r["size_bytes"]),
                          f"failed: {r['error'][:80]}", *["-"] * 11])
            continue
        lat = r["latency_ms"]
        achieved = 2 * macs / (lat["p50"] / 1000) / 1e9
        peak = peaks.get(str(r["threads"]))
        lines.append([label, f"{r['backend']} {r['backend_version']}", r["threads"], _mb(r["size_bytes"]),
                      f"{r['load_s']:.2f}", f"{r['cold_start_s']:.2f}", _ms(lat["p50"]), _ms(lat["p90"]),
                      _ms(lat["p99"]), f"{r['throughput_ips']:.1f}", f"{achieved:.1f}",
                      _pct(achieved / peak) if peak else "-", f"{r['peak_rss_mb']:.0f}",
                      f"{r['rss_growth_mb']:.0f}", _pct(r.get("accuracy")), _pct(r.get("agreement"))])
    header = ["model", "backend", "thr", "MB", "load s", "cold s", "p50 ms", "p90 ms", "p99 ms", "img/s",
              "GFLOP/s", "% fp32 peak", "peak RSS MB", "+RSS MB", "top-1 acc", "agree w/ Keras"]
    return _table(header, lines)


def targets(models: dict[str, dict], threads: int = 2) -> tuple[str, list[str]]:
    """The issue's three targets, each with its measured rows and met / not met."""
    text, summary = [], []
    rows = models["xception"]["bench"]["rows"]
    artifacts = [r for r in rows if r["kind"] == "artifact" and not r.get("error") and r["threads"] == threads]
    onnx32 = row_of(rows, "onnx", "float32", threads)
    if artifacts and onnx32:
        fastest = min(artifacts, key=lambda r: r["latency_ms"]["p50"])
        ratio = fastest["latency_ms"]["p50"] / onnx32["latency_ms"]["p50"]
        agree = fastest.get("agreement")
        met = ratio <= 0.6 and agree is not None and agree >= 0.99
        faithful = [r for r in artifacts if (r.get("agreement") or 0) >= 0.99]
        best_faithful = min(faithful, key=lambda r: r["latency_ms"]["p50"]) if faithful else None
        line = (f"1. Fastest artifact vs onnxruntime float32 (Xception, {threads} threads, batch 1): fastest is "
                f"`{fastest['name']}` ({fastest['backend']}) at p50 {_ms(fastest['latency_ms']['p50'])} ms vs "
                f"{_ms(onnx32['latency_ms']['p50'])} ms = **{ratio:.2f}x** (target <= 0.60x), top-1 agreement "
                f"with the Keras model {_pct(agree)} (target >= 99%): {ok(met)}.")
        one = [r for r in rows if r["kind"] == "artifact" and not r.get("error") and r["threads"] == 1]
        onnx32_one = row_of(rows, "onnx", "float32", 1)
        if one and onnx32_one:
            quick = min(one, key=lambda r: r["latency_ms"]["p50"])
            line += (f" At 1 thread: `{quick['name']}` {_ms(quick['latency_ms']['p50'])} ms vs "
                     f"{_ms(onnx32_one['latency_ms']['p50'])} ms = {quick['latency_ms']['p50'] / onnx32_one['latency_ms']['p50']:.2f}x.")
        if best_faithful is not None and best_faithful is not fastest:
            line += (f" The fastest artifact with >= 99% agreement is `{best_faithful['name']}` at "
                     f"{best_faithful['latency_ms']['p50'] / onnx32['latency_ms']['p50']:.2f}x.")
        low = [r["name"] for r in artifacts if r.get("agreement") is not None and r["agreement"] < 0.99]
        if low:
            line += (f" Agreement below 99%: {', '.join(f'`{n}`' for n in low)}. The Xception here has a random "
                     "frozen base, its ten scores differ by ~1e-3, so quantization noise reorders them: top-1 "
                     "agreement of this model says little about a trained model's int8 file.")
        text.append(line)
        summary.append(f"fastest/onnx-fp32 = {ratio:.2f}x, agreement {_pct(agree)}: {ok(met)}")
    f32, i8 = row_of(rows, "tflite", "float32", threads), row_of(rows, "tflite", "int8", threads)
    if f32 and i8:
        speedup = f32["latency_ms"]["p50"] / i8["latency_ms"]["p50"]
        text.append(f"2. TFLite int8 vs TFLite float32 (Xception, {threads} threads): p50 "
                    f"{_ms(i8['latency_ms']['p50'])} ms vs {_ms(f32['latency_ms']['p50'])} ms = **{speedup:.2f}x "
                    f"faster** (target >= 1.5x): {ok(speedup >= 1.5)}. See the int8 study below.")
        summary.append(f"int8/fp32 TFLite speed-up {speedup:.2f}x: {ok(speedup >= 1.5)}")
    srows = models["scratch"]["bench"]["rows"]
    keras_rows = [r for r in srows if r["kind"] == "keras" and not r.get("error")]
    runtime_rows = [r for r in srows if r["kind"] == "artifact" and not r.get("error") and r["threads"] == 1]
    python_start = models["scratch"].get("python_start_s", 0.0)
    if keras_rows and runtime_rows:
        keras_cold = min(r["cold_start_s"] for r in keras_rows)
        lines = []
        for r in sorted(runtime_rows, key=lambda r: r["cold_start_s"]):
            lines.append(f"`{r['name']}` {r['cold_start_s']:.3f} s ({keras_cold / r['cold_start_s']:.1f}x faster)")
        tflite32 = min(runtime_rows, key=lambda r: r["cold_start_s"])
        cold = tflite32["cold_start_s"]
        met = cold < 0.5 and keras_cold / cold >= 5
        text.append(
            f"3. Scratch CNN cold start (import + load + first prediction of a real photo, in a fresh process, "
            f"1 thread): runtime with the quickest artifact, `{tflite32['name']}`, **{cold:.3f} s** (target < 0.5 s) vs Keras checkpoint "
            f"with TensorFlow **{keras_cold:.2f} s** = **{keras_cold / cold:.1f}x** (target >= 5x): {ok(met)}. "
            f"Python's own start-up, not included, is {python_start:.3f} s on this machine. All artifacts: "
            + "; ".join(lines) + ".")
        summary.append(f"scratch cold start {cold:.3f} s, {keras_cold / cold:.1f}x faster than Keras: {ok(met)}")
    return "\n".join(text), summary


def study_table(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        if r.get("error"):
            lines.append([r["variant"], r["kernels"], r["threads"], "failed: " + r["error"][:80], "-", "-"])
        else:
            lines.append([r["variant"], r["kernels"], r["threads"], _ms(r["p50_ms"]), r["runs"],
                          r["delegate_partitions"]])
    return _table(["variant", "kernels", "thr", "p50 ms", "runs", "XNNPACK partitions"], lines)


def study_ratios(rows: list[dict]) -> dict[tuple[str, str, int], float]:
    """(variant, kernels, threads) -> p50 ms."""
    return {(r["variant"], r["kernels"], r["threads"]): r["p50_ms"] for r in rows if not r.get("error")}


def study_findings(rows: list[dict], threads: tuple[int, ...]) -> str:
    p50 = study_ratios(rows)
    lines = []
    for count in threads:
        def speed(variant, kernels):
            base, other = p50.get(("float32", kernels, count)), p50.get((variant, kernels, count))
            return f"{base / other:.2f}x" if base and other else "-"

        lines.append([count] + [speed(v, k) for v in ("int8 per-channel, uint8 I/O", "int8 per-channel, int8 I/O",
                                                       "int8 per-tensor, uint8 I/O", "dynamic")
                                for k in ("xnnpack", "builtin")])
    header = ["thr"] + [f"{v} ({k})" for v in ("int8 uint8-I/O", "int8 int8-I/O", "int8 per-tensor", "dynamic")
                        for k in ("XNNPACK", "builtin")]
    return ("Speed-up over float32 with the same kernels (float32 p50 / variant p50; above 1 is faster):\n\n"
            + _table(header, lines))


def render(results: dict[str, Any], command: str, int8_text: str) -> str:
    machine, versions, peaks = results["machine"], results["versions"], results["peak_gflops"]
    models = results["models"]
    target_text, _ = targets(models)
    parts = [
        "# edgelite benchmark results",
        f"Reproduce on this kind of machine with `{command}` (this run: {results['duration_min']:.0f} minutes, "
        + (f"{results['prepare_min']:.0f} of them training and converting; "
           if results.get("prepare_min", 0) >= 1 else
           "with the trained models and artifacts reused from the work folder; training and converting them "
           "from scratch adds about 20 minutes; ")
        + "pass `--work DIR` to choose the work folder). "
        "It trains both models, converts each to every artifact, measures each (artifact, thread count) in a "
        "fresh process with `edgelite bench`, and rewrites this file, `results.json` (everything measured, "
        "per-run latencies included) and the plots `results-xception.png` and `results-scratch.png`.",
        "## Machine",
        "\n".join([f"- CPU: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, flags {', '.join(machine['cpu_flags'])} "
        "(no AVX-512, no VNNI)" if "avx512_vnni" not in machine["cpu_flags"] and "avx_vnni" not in
        machine["cpu_flags"] else f"- CPU: {machine['cpu']}, flags {', '.join(machine['cpu_flags'])}",
        f"- {machine['os']}, Python {machine['python']}, {machine.get('memory_mb')} MB RAM",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- Load average (1/5/15 min) at the start {_load(machine['loadavg'])}, at the end "
        f"{_load(results['loadavg_end'])}: "
        "the 2 cores were shared with other work, so compare ratios within one run, not absolute numbers "
        "across runs.",
        f"- Measured float32 peak (numpy {peaks['size']}x{peaks['size']} matmul, best of 5): "
        + ", ".join(f"{t} thread(s) {g:.1f} GFLOP/s" for t, g in peaks["by_threads"].items())
        + ". `GFLOP/s` in the tables is 2 x MACs / p50; `% fp32 peak` divides it by the peak at the row's "
        "thread count (for int8 rows too, so it reads as an effective rate).",
        f"- Settings: batch 1, timing for {results['seconds']:g} s per row after {results['warmup']} warm-up "
        "calls, on real validation images; latency excludes preprocessing (decode + resize, timed apart in "
        "results.json); accuracy and agreement against the Keras checkpoint on clothing-small validation "
        "(all 341 images for the scratch CNN, a seeded sample of 150 for Xception, which predicts ~2 images/s)."]),
        "## Models",
    ]
    model_lines = []
    for family, data in models.items():
        model_lines.append(f"- **{FAMILY_TITLES.get(family, family)}**: {data['macs'] / 1e9:.3f} GMACs per image, "
                     f"checkpoint `{data['checkpoint_name']}` ({_mb(data['checkpoint_size'])} MB). "
                     f"{data['note']}")
    parts.append("\n".join(model_lines))
    parts.append("## Targets (issue 4)")
    parts.append(target_text)
    for family, data in models.items():
        parts.append(f"## {FAMILY_TITLES.get(family, family)}")
        parts.append(model_table(family, data, {str(k): v for k, v in peaks["by_threads"].items()}))
        parts.append(f"![{family}](results-{family}.png)")
    if results.get("int8_study"):
        parts.append("## Why TFLite int8 is not faster than float32 here")
        parts.append(int8_text)
        parts.append(study_findings(results["int8_study"], tuple(results["threads"])))
        parts.append("All timings of the study (random input of the model's dtype, Xception 299):\n\n"
                     + study_table(results["int8_study"]))
    return "\n\n".join(parts) + "\n"
