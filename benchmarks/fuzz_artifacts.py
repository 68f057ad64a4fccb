"""Seeded fuzz of a small .tflite artifact: every mutant must load as a ModelFileError or predict.

    python benchmarks/fuzz_artifacts.py                    # 3000 mutants of two tiny models it builds
    python benchmarks/fuzz_artifacts.py --count 5000 --seed 7 --model artifacts/model_int8.tflite

Mutants are made in this process: structural ones by editing bytes (bytes set,
bits flipped, int32/uint16 fields overwritten with boundary values, cuts,
splices, zeroed runs, inserted and deleted bytes), semantic ones by editing the
flatbuffer with the LiteRT schema (tensor shapes, types, buffers and
quantization, subgraph and operator tensor indices, opcodes, operator options,
buffer contents), and metadata ones by editing the edgelite JSON. The schema
and the tiny models (float32 and full int8) need TensorFlow; without it only
structural and metadata mutants of --model are made.

Each mutant then runs in its own forked process (a runner subprocess that
imports only edgelite.runtime forks once per mutant), with an alarm as its time
limit and a cap on its address space, so a crash, a hang or a runaway
allocation is counted against that mutant and the run goes on.
Printed: counts per outcome (ModelFileError, valid prediction, other exception,
crash/signal, timeout), the same per mutation kind, and the first examples of
anything but the first two. Mutants that did not end in one of the first two
are kept in --keep for reproduction.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUTCOMES = ("ModelFileError", "valid prediction", "other exception", "crash/signal", "timeout")
INT32_VALUES = (0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, -1, -2, -0x80000000)
DIMS = (-2, -1, 0, 1, 2, 3, 4, 7, 8, 9, 16, 1000, 65536, 2**31 - 1)


# -- the base model -------------------------------------------------------------
def tiny_models() -> dict[str, bytes]:
    """An 8x8 RGB classifier (rescale, conv, pool, dense softmax over 3 classes) with edgelite metadata,
    as float32 and as full int8 (uint8 input and output), where quantization parameters are there to break."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    from edgelite.convert.tflite import embed_metadata
    from edgelite.lazy import quiet_native
    from edgelite.runtime.metadata import ArtifactMetadata

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(2, 3, activation="relu")(x)
    x = keras.layers.Flatten()(keras.layers.MaxPooling2D()(x))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    images = np.random.default_rng(0).uniform(0, 255, (16, 1, 8, 8, 3)).astype(np.float32)
    models = {}
    for precision in ("float32", "int8"):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if precision == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image] for image in images)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.uint8
        with quiet_native():
            flatbuffer = bytes(converter.convert())
        metadata = ArtifactMetadata(("red", "green", "blue"), 8, 8, graph_scaling="rescale", precision=precision)
        models[precision] = embed_metadata(flatbuffer, metadata)
    return models


# -- structural mutants: bytes --------------------------------------------------
def structural(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    out = bytearray(data)
    kind = rng.choice(("bytes", "bitflip", "int32", "uint16", "cut", "splice", "zeros", "insert", "delete"))
    if kind == "bytes":
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif kind == "bitflip":
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(out))
            out[position] ^= 1 << rng.randrange(8)
    elif kind == "int32":
        position = rng.randrange(0, len(out) - 4, 4)
        value = rng.choice(INT32_VALUES + (len(out), len(out) - 4, rng.randrange(len(out))))
        out[position:position + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")
    elif kind == "uint16":
        position = rng.randrange(0, len(out) - 2, 2)
        out[position:position + 2] = rng.choice((0, 1, 2, 4, 0xFF, 0xFFFF, rng.randrange(256))).to_bytes(2, "little")
    elif kind == "cut":
        del out[rng.randrange(8, len(out)):]
    elif kind == "splice":
        size = rng.randint(1, 64)
        source, target = rng.randrange(len(out) - size), rng.randrange(len(out) - size)
        out[target:target + size] = data[source:source + size]
    elif kind == "zeros":
        start = rng.randrange(len(out))
        end = min(len(out), start + rng.randint(1, 64))
        out[start:end] = bytes(end - start)
    elif kind == "insert":
        position = rng.randrange(len(out))
        out[position:position] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 8))))
    else:
        position = rng.randrange(len(out) - 8)
        del out[position:position + rng.choice((1, 2, 4, 8))]
    return f"structural/{kind}", bytes(out)


# -- semantic mutants: the LiteRT schema ----------------------------------------
def semantic(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    import flatbuffers
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph = model.subgraphs[0]
    tensors = graph.tensors
    count = len(tensors)

    def index() -> int:
        return rng.choice((-1, 0, count - 1, count, count + 5, rng.randrange(count)))

    kind = rng.choice(("shape", "type", "buffer-index", "quantization", "graph-inputs", "graph-outputs",
                       "operator-tensors", "opcode-index", "operator-code", "options", "buffer-data", "operators"))
    tensor = rng.choice(tensors)
    if kind == "shape":
        shape = list(tensor.shape if tensor.shape is not None else [])
        if shape and rng.random() < 0.8:
            shape[rng.randrange(len(shape))] = rng.choice(DIMS)
        else:
            shape = [rng.choice(DIMS) for _ in range(rng.randint(0, 5))]
        tensor.shape = np.array(shape, dtype=np.int64).astype(np.int32)
        if rng.random() < 0.5:
            tensor.shapeSignature = None
    elif kind == "type":
        tensor.type = rng.randrange(18)
    elif kind == "buffer-index":
        tensor.buffer = rng.choice((0, len(model.buffers) - 1, len(model.buffers), rng.randrange(len(model.buffers))))
    elif kind == "quantization":
        quantization = tensor.quantization or schema.QuantizationParametersT()
        quantization.scale = np.array([rng.choice((0.0, -1.0, float("nan"), float("inf"), 1e-30, 1e30, 0.5))],
                                      dtype=np.float32)
        quantization.zeroPoint = np.array([rng.choice((-1000, -129, 0, 128, 255, 256, 2**40))], dtype=np.int64)
        tensor.quantization = quantization
    elif kind in ("graph-inputs", "graph-outputs"):
        indices = np.array([index() for _ in range(rng.choice((0, 1, 1, 2)))], dtype=np.int32)
        setattr(graph, "inputs" if kind == "graph-inputs" else "outputs", indices)
    elif kind == "operator-tensors":
        operator = rng.choice(graph.operators)
        field = rng.choice(("inputs", "outputs"))
        values = list(getattr(operator, field))
        if values and rng.random() < 0.8:
            values[rng.randrange(len(values))] = index()
        else:
            values = [index() for _ in range(rng.randint(0, 4))]
        setattr(operator, field, np.array(values, dtype=np.int32))
    elif kind == "opcode-index":
        rng.choice(graph.operators).opcodeIndex = rng.choice((0, len(model.operatorCodes), 255, rng.randrange(
            len(model.operatorCodes))))
    elif kind == "operator-code":
        code = rng.choice(model.operatorCodes)
        if rng.random() < 0.5:
            code.builtinCode = rng.choice((0, 3, 9, 25, 32, 127, 150, 209, 500))
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
        else:
            code.version = rng.choice((0, 1, 2, 3, 12, 99, -1))
    elif kind == "options":
        operator = rng.choice(graph.operators)
        options = operator.builtinOptions
        fields = [name for name, value in vars(options).items() if isinstance(value, int)] if options else []
        if fields:
            setattr(options, rng.choice(fields), rng.choice((0, -1, 2, 3, 100, 2**31 - 1)))
        else:
            operator.builtinOptionsType = rng.randrange(130)
    elif kind == "buffer-data":
        with_data = [b for b in model.buffers if b.data is not None and len(b.data)] or model.buffers
        buffer = rng.choice(with_data)
        data_now = np.asarray(buffer.data if buffer.data is not None else [], dtype=np.uint8)
        choice = rng.randrange(3)
        buffer.data = (data_now[:rng.randrange(len(data_now) + 1)] if choice == 0
                       else np.concatenate([data_now, np.zeros(rng.randint(1, 64), np.uint8)]) if choice == 1
                       else np.frombuffer(bytes(rng.randrange(256) for _ in range(len(data_now))), np.uint8))
    else:
        operators = list(graph.operators)
        choice = rng.randrange(3)
        if choice == 0 and operators:
            operators.pop(rng.randrange(len(operators)))
        elif choice == 1:
            operators.insert(rng.randrange(len(operators) + 1), rng.choice(graph.operators))
        else:
            rng.shuffle(operators)
        graph.operators = operators
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return f"semantic/{kind}", bytes(builder.Output())


# -- metadata mutants: the edgelite JSON ----------------------------------------
METADATA_VALUES = (0, -1, 1, 7, 9, 64, 30000, 2**63, 1.5, float("nan"), True, None, "", "8", "x" * 2000, [],
                   ["a"], ["a", "b"], ["a", "b", "c", "d"], [1, 2, 3], {"a": 1}, "int4", "[red]x[/red]", "\x1b[31m")


def metadata(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    from edgelite.convert.tflite import embed_metadata
    from edgelite.runtime.metadata import METADATA_KEY
    from edgelite.runtime.tflite_format import read_tflite

    document = json.loads(read_tflite(data).metadata[METADATA_KEY])
    kind = rng.choice(("field", "field", "drop", "not-json", "format-version"))
    if kind == "field":
        document[rng.choice(sorted(document))] = rng.choice(METADATA_VALUES)
    elif kind == "drop":
        document.pop(rng.choice(sorted(document)))
    elif kind == "format-version":
        document["format_version"] = rng.choice((0, 2, 99, "1", 1.0))

    class Raw:  # what embed_metadata needs of an ArtifactMetadata
        @staticmethod
        def to_json() -> str:
            if kind == "not-json":
                return rng.choice(("{", "[]", "null", "{\"labels\": " + "[" * 5000 + "]" * 5000 + "}"))
            return json.dumps(document)

    return f"metadata/{kind}", embed_metadata(data, Raw())


# -- running one mutant, in a forked child ----------------------------------------
def _outcome(path: str) -> dict:
    import numpy as np

    from edgelite.errors import ModelFileError
    from edgelite.runtime import load

    try:
        model = load(path, threads=1)
        ranked = model.predict(np.full((model.height, model.width, 3), 90, np.uint8), top_k=3)
        if not ranked or not all(isinstance(p.label, str) for p in ranked):
            return {"outcome": "other exception", "detail": f"predict returned {ranked!r}"}
        return {"outcome": "valid prediction"}
    except ModelFileError as exc:
        return {"outcome": "ModelFileError", "detail": str(exc)[:200]}
    except BaseException as exc:  # noqa: B036 - counting every other kind is the point
        return {"outcome": "other exception", "detail": f"{type(exc).__name__}: {str(exc)[:200]}"}


def _run_forked(path: str, timeout: float, memory_gb: float, outcome=None) -> dict:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one mutant, then exit without cleanup
        os.close(read_end)
        signal.alarm(max(1, int(timeout)))
        limit = int(memory_gb * 2**30)  # a mutant that allocates past it fails or crashes, not the machine
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)  # LiteRT's own error lines
        try:
            result = (outcome or _outcome)(path)
        except BaseException as exc:  # noqa: B036
            result = {"outcome": "other exception", "detail": repr(exc)[:200]}
        os.write(write_end, json.dumps(result).encode())
        os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == signal.SIGALRM:
            return {"outcome": "timeout", "detail": f"over {timeout:g} s"}
        return {"outcome": "crash/signal", "detail": signal.Signals(number).name}
    if not chunks:
        return {"outcome": "crash/signal", "detail": f"exit status {os.WEXITSTATUS(status)}, no result"}
    return json.loads(b"".join(chunks))


def runner(folder: Path, timeout: float, memory_gb: float) -> None:
    """Run every mutant listed on stdin (one path a line), one JSON line of outcome each."""
    import edgelite.runtime  # noqa: F401 - imported once, before the forks
    import numpy  # noqa: F401

    for line in sys.stdin:
        path = line.strip()
        if path:
            result = _run_forked(str(folder / path), timeout, memory_gb)
            print(json.dumps({"file": path, **result}), flush=True)


# -- the driver ------------------------------------------------------------------
def make_mutants(bases: dict[str, bytes], count: int, seed: int, folder: Path,
                 semantic_ok: bool) -> dict[str, tuple[str, str]]:
    """Write `count` mutants into `folder`, taking the base models in turn; {file name: (base, mutation kind)}."""
    makers = [structural, structural, metadata] + ([semantic, semantic] if semantic_ok else [])
    names = sorted(bases)
    kinds = {}
    for number in range(count):
        rng = random.Random(f"{seed}-{number}")
        base = names[number % len(names)]
        maker = rng.choice(makers)
        try:
            kind, content = maker(bases[base], rng)
        except Exception:  # a mutant the schema cannot pack (or a base without metadata): a structural one
            kind, content = structural(bases[base], rng)
        name = f"mutant_{number:05d}.tflite"
        (folder / name).write_bytes(content)
        kinds[name] = (base, kind)
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="A small .tflite with edgelite metadata [default: build one].")
    parser.add_argument("--count", type=int, default=3000, help="Mutants to make [default: 3000].")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0, help="Seconds one mutant may take [default: 20].")
    parser.add_argument("--max-minutes", type=float, default=14.0,
                        help="Stop starting mutants after this long [default: 14].")
    parser.add_argument("--memory-gb", type=float, default=8.0,
                        help="Address space one mutant may use [default: 8].")
    parser.add_argument("--jobs", type=int, default=1, help="Runner processes [default: 1].")
    parser.add_argument("--keep", type=Path, default=Path("fuzz-findings"),
                        help="Folder for mutants that end in neither a ModelFileError nor a prediction.")
    parser.add_argument("--runner", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runner is not None:
        runner(args.runner, args.timeout, args.memory_gb)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow  # noqa: F401

        semantic_ok = True
    except ImportError:
        semantic_ok = False
    if args.model is None and not semantic_ok:
        sys.exit("building the tiny models needs TensorFlow; pass --model a small .tflite instead")
    bases = {args.model.name: args.model.read_bytes()} if args.model else tiny_models()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgelite-fuzz-") as work:
        folder = Path(work)
        kinds = make_mutants(bases, args.count, args.seed, folder, semantic_ok)
        made = time.monotonic() - started
        results = _run_all(folder, sorted(kinds), args, started)
        _report(bases, kinds, results, args, made, time.monotonic() - started)
        findings = [r for r in results if r["outcome"] not in OUTCOMES[:2]]
        if findings:
            args.keep.mkdir(parents=True, exist_ok=True)
            for result in findings:
                shutil.copy(folder / result["file"], args.keep / result["file"])
            print(f"\n{len(findings)} findings kept in {args.keep}/")


def _run_all(folder: Path, names: list[str], args, started: float) -> list[dict]:
    deadline = started + 60 * args.max_minutes
    command = [sys.executable, str(Path(__file__).resolve()), "--runner", str(folder), "--timeout", str(args.timeout),
               "--memory-gb", str(args.memory_gb)]
    environment = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                       PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                   os.environ.get("PYTHONPATH", "")]))
    def start() -> subprocess.Popen:
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment)

    runners = [start() for _ in range(max(1, args.jobs))]
    results: list[dict] = []
    pending = collections.deque(names)
    busy = {}
    while pending or busy:
        for number, process in enumerate(runners):
            if number not in busy and pending and time.monotonic() < deadline:
                busy[number] = pending.popleft()
                process.stdin.write(busy[number] + "\n")
                process.stdin.flush()
        if not busy:
            break
        for number in list(busy):
            line = runners[number].stdout.readline()
            if not line:  # the runner itself died (the forks should prevent it): count it, start another
                runners[number].wait()
                runners[number] = start()
            results.append(json.loads(line) if line else {"file": busy[number], "outcome": "crash/signal",
                                                            "detail": "the runner died"})
            del busy[number]
            if len(results) % 250 == 0:
                print(f"  {len(results)} of {len(names)} mutants run, {time.monotonic() - started:.0f} s",
                      file=sys.stderr, flush=True)
    for process in runners:
        process.stdin.close()
        process.wait()
    return results


def _report(bases: dict[str, bytes], kinds: dict[str, tuple[str, str]], results: list[dict], args, made: float,
            seconds: float) -> None:
    totals = collections.Counter(r["outcome"] for r in results)
    sizes = ", ".join(f"{name} {len(data):,} bytes" for name, data in bases.items())
    print(f"fuzz of small .tflite models ({sizes}): {len(results)} of {len(kinds)} mutants run "
          f"(seed {args.seed}), {made:.0f} s to make, {seconds:.0f} s in all")
    for outcome in OUTCOMES:
        print(f"  {outcome:<18} {totals[outcome]:>6}")
    for title, key in (("base model", lambda r: kinds[r["file"]][0]), ("mutation kind", lambda r: kinds[r["file"]][1])):
        print(f"\nby {title}:")
        print("  " + f"{title:<28}" + "".join(f"{o[:14]:>16}" for o in OUTCOMES))
        groups: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for result in results:
            groups[key(result)][result["outcome"]] += 1
        for group in sorted(groups):
            print("  " + f"{group:<28}" + "".join(f"{groups[group][o]:>16}" for o in OUTCOMES))
    others = [r for r in results if r["outcome"] not in OUTCOMES[:2]]
    if others:
        print("\nfirst findings:")
        for result in others[:15]:
            base, kind = kinds[result["file"]]
            print(f"  {result['file']} ({base}, {kind}): {result['outcome']}: {result.get('detail', '')}")
    messages = collections.Counter(r.get("detail", "").split(": ", 1)[-1][:70] for r in results
                                   if r["outcome"] == "ModelFileError")
    print("\nmost common ModelFileError messages:")
    for message, number in messages.most_common(12):
        print(f"  {number:>5}  {message}")


if __name__ == "__main__":
    main()
