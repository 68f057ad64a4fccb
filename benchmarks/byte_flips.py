"""Random byte flips in small .tflite artifacts, each loaded in its own process, with and without a manifest.

    python benchmarks/byte_flips.py --count 200          # two tiny models it builds (needs TensorFlow)
    python benchmarks/byte_flips.py --count 200 --model artifacts/model_int8.tflite

Each mutant is its base model with 1 to 4 random bytes XOR-ed with a random
non-zero value. It is loaded and run on two fixed images in a forked child (the
runner of fuzz_artifacts.py: an alarm and an address-space cap per mutant) and
counted as one of:

    clean error          a ModelFileError (or another edgelite error) at load or predict
    untyped error        any other exception
    crash                a signal, a timeout, or no result
    same answers         loaded and answered exactly as the intact model
    answers differently  loaded and answered otherwise: the silent wrong answer

The same mutants run twice: alone in their folder, then beside the
manifest.json convert writes (the intact file's size and sha256). With the
manifest, every flip that would answer differently must become a clean error.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fuzz_artifacts import _run_forked, tiny_models  # noqa: E402

OUTCOMES = ("clean error", "untyped error", "crash", "same answers", "answers differently")


def scores_of(path: str) -> dict:
    """What one mutant does: its scores on two fixed images, or the error it raised (run in the fork)."""
    import numpy as np

    from edgelite.errors import EdgeliteError
    from edgelite.runtime import load

    try:
        model = load(path, threads=1)
        rng = np.random.default_rng(0)
        images = [np.full((model.height, model.width, 3), 90, np.uint8),
                  rng.integers(0, 256, (model.height, model.width, 3), dtype=np.uint8)]
        scores = [model.class_scores(model.run(model.prepare(image).pixels[None]))[0].tolist() for image in images]
        return {"outcome": "answered", "scores": scores, "labels": list(model.labels)}
    except EdgeliteError as exc:
        return {"outcome": "clean error", "detail": f"{type(exc).__name__}: {str(exc)[:160]}"}
    except BaseException as exc:  # noqa: B036 - counting every other kind is the point
        return {"outcome": "untyped error", "detail": f"{type(exc).__name__}: {str(exc)[:160]}"}


def flip(data: bytes, rng: random.Random) -> bytes:
    mutant = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        mutant[rng.randrange(len(mutant))] ^= rng.randint(1, 255)
    return bytes(mutant)


def write_mutants(bases: dict[str, bytes], count: int, seed: int, root: Path) -> list[tuple[str, Path]]:
    """One folder per mutant (the file keeps its base's name, as a manifest lists it); [(base, path)]."""
    names, mutants = sorted(bases), []
    for number in range(count):
        base = names[number % len(names)]
        folder = root / f"m{number:05d}"
        folder.mkdir()
        path = folder / base
        path.write_bytes(flip(bases[base], random.Random(f"{seed}-{number}")))
        mutants.append((base, path))
    return mutants


def add_manifests(bases: dict[str, bytes], mutants: list[tuple[str, Path]]) -> None:
    """The manifest.json convert wrote for the intact file, beside each mutant."""
    for base, path in mutants:
        entry = {"file": base, "size_bytes": len(bases[base]), "sha256": hashlib.sha256(bases[base]).hexdigest()}
        (path.parent / "manifest.json").write_text(json.dumps({"artifacts": [entry]}))


def run_all(paths: list[Path], timeout: float, memory_gb: float) -> list[dict]:
    """Each path in a forked child of one runner process (which imported edgelite.runtime once)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--runner", "--timeout", str(timeout),
               "--memory-gb", str(memory_gb)]
    done = subprocess.run(command, input="".join(f"{p}\n" for p in paths), capture_output=True, text=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def runner(timeout: float, memory_gb: float) -> None:
    import edgelite.runtime  # noqa: F401 - imported once, before the forks

    for line in sys.stdin:
        if line.strip():
            result = _run_forked(line.strip(), timeout, memory_gb, scores_of)
            print(json.dumps(result), flush=True)


def classify(result: dict, reference: dict) -> str:
    if result["outcome"] == "answered":
        same = result["labels"] == reference["labels"] and all(
            len(a) == len(b) and all(abs(x - y) <= 1e-6 for x, y in zip(a, b))
            for a, b in zip(result["scores"], reference["scores"]))
        return "same answers" if same else "answers differently"
    if result["outcome"] in ("crash/signal", "timeout"):
        return "crash"
    return result["outcome"] if result["outcome"] in OUTCOMES else "untyped error"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="A small .tflite with edgelite metadata [default: build two].")
    parser.add_argument("--count", type=int, default=200, help="Mutants [default: 200].")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0, help="Seconds one mutant may take [default: 20].")
    parser.add_argument("--memory-gb", type=float, default=4.0, help="Address space one mutant may use.")
    parser.add_argument("--runner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runner:
        runner(args.timeout, args.memory_gb)
        return
    bases = {args.model.name: args.model.read_bytes()} if args.model else {
        f"tiny_{precision}.tflite": data for precision, data in tiny_models().items()}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgelite-flips-") as work:
        root = Path(work)
        for name, data in bases.items():
            (root / name).write_bytes(data)
        references = dict(zip(bases, run_all([root / name for name in bases], args.timeout, args.memory_gb)))
        mutants = write_mutants(bases, args.count, args.seed, root)
        counts = {}
        for mode in ("without a manifest", "with a manifest"):
            if mode == "with a manifest":
                add_manifests(bases, mutants)
            results = run_all([path for _, path in mutants], args.timeout, args.memory_gb)
            counts[mode] = collections.Counter(classify(r, references[base]) for (base, _), r in zip(mutants, results))
            untyped = [r.get("detail") for r in results if classify(r, {"labels": [], "scores": []}) == "untyped error"]
            if untyped:
                print(f"untyped errors {mode}: {untyped[:5]}")
    print(f"byte flips in {', '.join(f'{n} ({len(d):,} bytes)' for n, d in bases.items())}: {args.count} mutants, "
          f"seed {args.seed}, {time.monotonic() - started:.0f} s")
    print(f"  {'':<20}" + "".join(f"{o:>21}" for o in OUTCOMES))
    for mode, counter in counts.items():
        print(f"  {mode:<20}" + "".join(f"{counter[o]:>21}" for o in OUTCOMES))


if __name__ == "__main__":
    main()
