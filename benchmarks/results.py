"""Stage 4 of the suite: turn the measured data into RESULTS.md (tables, targets, int8 findings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

HERE_JSON = Path(__file__).resolve().parent / "results.json"

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
    created = next(iter(models.values()))["bench"].get("created", "")
    parts.append(f"The model tables and these targets come from the full run of the suite ({created} UTC, the "
                 "machine above). The sections after them were measured later, each in its own run on the machine "
                 "it names: real photos (issue 9), the trained Xception-style model with the int8 graph rewrite "
                 "that puts TFLite int8 Xception in one XNNPACK partition (issue 12; its speed rows replace "
                 "target 2's 1.02x, which predates the rewrite), and `edgelite serve` (issue 11).")
    parts.append(target_text)
    for family, data in models.items():
        parts.append(f"## {FAMILY_TITLES.get(family, family)}")
        parts.append(model_table(family, data, {str(k): v for k, v in peaks["by_threads"].items()}))
        parts.append(f"![{family}](results-{family}.png)")
    if results.get("photos"):
        parts.append("## Real photos: fast decode, end to end, folders (issue 9)")
        parts.append(photos_section(results["photos"]))
    trained = HERE_JSON.parent / "trained_int8.json"
    if trained.is_file():
        from trained_int8 import render_trained_int8

        parts.append(render_trained_int8(json.loads(trained.read_text())))
    if results.get("serve"):
        parts.append("## `edgelite serve` under load (issue 11)")
        parts.append(serve_section(results["serve"]))
    if results.get("int8_study"):
        parts.append("## Why TFLite int8 was not faster than float32 (issue 4's study, before the int8 graph "
                     "rewrite of issue 12)")
        parts.append(int8_text)
        parts.append(study_findings(results["int8_study"], tuple(results["threads"])))
        parts.append("All timings of the study (random input of the model's dtype, Xception 299):\n\n"
                     + study_table(results["int8_study"]))
    return "\n\n".join(parts) + "\n"


def _e2e_row(row: dict) -> list[str]:
    if row.get("error"):
        return [row["name"], "-", f"failed: {row['error'][:60]}", *["-"] * 6]
    e2e, mp = row["end_to_end_ms"], row["source_megapixels"]
    folder, inference = row.get("folder_ips"), row["throughput_ips"]
    return [row["name"], f"{row['backend']} {row['backend_version']}", f"{mp['p50']:.1f}",
            _ms(row["latency_ms"]["p50"]), _ms(e2e["p50"]), _ms(e2e["p90"]), f"{inference:.1f}",
            f"{folder:.1f}" if folder else "-", f"{folder / inference:.2f}x" if folder else "-"]


def photos_section(photos: dict[str, Any]) -> str:
    """The real-photos stage (issue 9): decode paths, agreement, end to end, folder rates, memory."""
    machine = photos["machine"]
    decode = photos["decode_ms"]
    d299 = decode["299"]
    m299 = d299["median_ms"]
    agree12, agree_orig = photos["agreement"]["12mp"], photos["agreement"]["original"]
    x_rows = photos["xception_end_to_end"]["rows"]
    x_int8 = next((r for r in x_rows if r["name"].endswith("_int8.onnx") and not r.get("error")), None)
    folder = photos["scratch_folder"]
    memory = photos["memory"]
    small, large = (memory[str(n)] for n in sorted(int(k) for k in memory if k.isdigit()))
    lines = [
        f"Measured {photos['created']} in one run of the stage ({photos['duration_min']:.0f} min; "
        "`python benchmarks/run.py --only-photos` repeats it alone) on "
        f"{machine['cpu']} ({', '.join(machine['cpu_flags'])}), load average {machine['loadavg'][0]:.2f} at the "
        f"start and {machine['loadavg_end'][0]:.2f} at the end. The 12 MP set is the {photos['twelve_mp_images']} "
        "clothing-small validation photos upscaled (bicubic) to 4032x3024 (3024x4032 when portrait), JPEG "
        "quality 90. Upscaled photos are smoother than a camera's, so their full decode is cheaper than a real "
        "12 MP photo's; the reduced-scale decode gains less on them than on noisy camera files.",
        "",
        "### Targets (issue 9)",
        "",
        f"1. 12 MP JPEG to 299x299 pixels, fast decode: median {m299['fast']:.1f} ms vs exact decode + resize "
        f"{m299['exact']:.1f} ms = **{d299['exact_over_fast']:.1f}x faster** (target >= 10x): "
        f"{ok(d299['exact_over_fast'] >= 10)}; vs edgelite 0.1.0's path {m299['v0.1.0']:.1f} ms = "
        f"{d299['v010_over_fast']:.1f}x."
        + (f" Against the Xception int8 ONNX inference p50 of {x_int8['latency_ms']['p50']:.1f} ms (2 threads, "
           f"same run): **{m299['fast'] / x_int8['latency_ms']['p50']:.2f}x** (target <= 0.25x): "
           f"{ok(m299['fast'] / x_int8['latency_ms']['p50'] <= 0.25)}." if x_int8 else ""),
        f"2. Exact vs fast decode, top-1 agreement with the trained scratch CNN: 12 MP set "
        f"**{agree12['top1_agreement']:.1%}** of {agree12['images']} (target >= 99.5%: "
        f"{ok(agree12['top1_agreement'] >= 0.995)}, largest score difference {agree12['max_score_diff']:.3f}); "
        f"original photos {agree_orig['top1_agreement']:.1%} of {agree_orig['images']}, with "
        f"{agree_orig['identical_inputs']} of {agree_orig['images']} model inputs identical to the last bit "
        "(fast decode leaves JPEGs under 4x the input alone).",
        (f"3. Folder throughput through `predict_iter`, Xception int8 ONNX on the 12 MP set (2 threads): "
         f"**{x_int8['folder_ips']:.1f} images/s** vs inference-only {x_int8['throughput_ips']:.1f} images/s = "
         f"**{x_int8['folder_ips'] / x_int8['throughput_ips']:.2f}x** (target >= 0.8x): "
         f"{ok(x_int8['folder_ips'] / x_int8['throughput_ips'] >= 0.8)}." if x_int8 else
         "3. Xception int8 ONNX end-to-end row failed; see results.json."),
        f"4. Scratch CNN ({folder['artifact']}, 2 threads) on the {folder['images']} original photos: "
        f"`predict_iter` **{folder['predict_iter']:.0f} images/s** vs the 0.1.0 one-image-at-a-time loop "
        f"{folder['one_at_a_time_v010']:.0f} images/s = **{folder['ratio']:.2f}x** (target >= 3x): "
        f"{ok(folder['ratio'] >= 3)}.",
        f"5. Peak RSS of `edgelite predict --jsonl --out` over {large['lines']} images: "
        f"{large['peak_rss_mb']:.0f} MB vs {small['peak_rss_mb']:.0f} MB over {small['lines']} = "
        f"**{memory['ratio']:.2f}x** (target <= 1.2x): {ok(memory['ratio'] <= 1.2)} "
        f"({large['seconds']:.1f} s and {small['seconds']:.1f} s wall).",
        "",
        "### Decode + resize, median ms per 12 MP JPEG",
        "",
        _table(["model input", "images", "v0.1.0 path", "exact", "fast", "exact / fast", "v0.1.0 / fast"],
               [[f"{size}x{size}", d["images"], _ms(d["median_ms"]["v0.1.0"]), _ms(d["median_ms"]["exact"]),
                 _ms(d["median_ms"]["fast"]), f"{d['exact_over_fast']:.1f}x", f"{d['v010_over_fast']:.1f}x"]
                for size, d in sorted(decode.items(), key=lambda item: -int(item[0]))]),
        "",
        "### End to end per artifact (2 threads, batch 1; `edgelite bench --end-to-end`)",
        "",
        "Decode + resize + inference of each file as it is, one at a time (`e2e`), the inference-only rate of "
        "the same process, and the folder rate through `predict_iter` (decoding ahead in threads, batches "
        "of 8). Xception: a seeded sample of 64 files of the 12 MP set; scratch CNN: 64 original photos.",
        "",
        _table(["artifact", "backend", "MP", "inference p50 ms", "e2e p50 ms", "e2e p90 ms",
                "inference img/s", "folder img/s", "folder / inference"],
               [_e2e_row(r) for r in x_rows + photos["scratch_end_to_end"]["rows"]]),
    ]
    return "\n".join(lines)


def serve_section(serve: dict[str, Any]) -> str:
    """The load runs of `benchmarks/load_serve.py`: throughput against bench, latency, errors, memory."""
    machine = serve["machine"]
    lines = [f"Measured {serve['created']} with `benchmarks/load_serve.py` (a bounded httpx asyncio client on "
             "127.0.0.1 and a server it starts itself: 2,000 requests at concurrency 16, clothing-small "
             "validation photos as JPEG uploads, 2 interpreter threads, max batch 8, max delay 5 ms) on "
             f"{machine['cpu']}, load average {machine['loadavg'][0]:.2f} at the start. The client and the server "
             "share the machine's 2 cores. `bench img/s` is `edgelite bench` inference-only throughput of the same "
             "artifact and threads, measured in the same run; the server also decodes every upload and speaks HTTP.",
             ""]
    rows = []
    for run in serve["runs"]:
        if run.get("failed"):
            rows.append([_file_name(run["artifact"]), "-", *["failed"] * 9])
            continue
        good = run["latency_good"]
        rows.append([_file_name(run["artifact"]), f"{run['options']['bad_fraction']:.0%}",
                     f"{run['good_answered']}/{run['good']}", f"{run['bad_refused_as_expected']}/{run['bad']}",
                     run["errors"], f"{run['good_throughput_ips']:.1f}",
                     f"{run['bench_throughput_ips']:.1f}" if run.get("bench_throughput_ips") else "-",
                     f"{run['serve_over_bench']:.2f}x" if run.get("serve_over_bench") else "-",
                     f"{good.get('p50_ms') or 0:.0f} / {good.get('p99_ms') or 0:.0f}",
                     f"{run['rss_after_warmup_mb']:.0f} -> {run['rss_after_run_mb']:.0f} ({run['rss_ratio']:.2f}x)",
                     run["restarts"]])
    lines.append(_table(["artifact", "bad uploads", "good answered", "bad refused (4xx)", "errors",
                         "served img/s", "bench img/s", "served / bench", "p50 / p99 ms", "server RSS MiB",
                         "restarts"], rows))
    return "\n".join(lines)


def _file_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]
