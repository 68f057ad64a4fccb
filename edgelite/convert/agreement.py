"""Reach an int8 agreement target by keeping the few layers that need it in float.

    options = ConvertOptions(calibration=Path("train"), check=Path("val"), min_agreement=0.995)
    report = convert(Path("model.keras"), Path("out"), options)
    report.artifacts[-1].float_layers.layers      # ("block4_sep2",)

After the plain int8 artifact is written, each format ranks its layers by the
error int8 adds to them (the debuggers `--explain-int8` runs: LiteRT's
QuantizationDebugger, onnxruntime's qdq_loss_debug) and builds variants that
leave the first k of that ranking in float (LiteRT: the quantizer's
`denylisted_nodes`; onnxruntime: `nodes_to_exclude`). k grows 1, 2, 4, ...
until a variant meets the target on the selection images, then the smallest k
between the last miss and that hit that also meets it is searched for. The
chosen variant replaces the plain artifact; the price (layers, agreement before
and after, latency of both timed in the same run) goes into the report.

Three sets of images stay apart: calibration images set the int8 ranges, the
selection images choose the layers, and the parity convert reports is measured
on the rest of the check images (or all of them, given a selection folder).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol, Sequence

import numpy as np

from edgelite.convert.explain import LayerError, rank_layers
from edgelite.convert.parity import Parity, check_parity
from edgelite.errors import DatasetError
from edgelite.modes import Format, Progress
from edgelite.runtime import load

if TYPE_CHECKING:
    from edgelite.convert.options import Calibration, ConvertOptions
    from edgelite.convert.source import SourceModel

TIMING_SECONDS = 1.0  # per artifact, interleaved: enough for a stable median on a small model
MIN_TIMED_RUNS = 5


@dataclass(frozen=True)
class CheckSplit:
    """Images with the Keras model's outputs on them (and their classes, where known)."""

    pixels: np.ndarray
    reference: np.ndarray
    truth: Optional[np.ndarray]
    description: str

    def take(self, rows: np.ndarray, description: str) -> "CheckSplit":
        truth = None if self.truth is None else self.truth[rows]
        return CheckSplit(self.pixels[rows], self.reference[rows], truth, description)


def split_check(images: CheckSplit) -> tuple[CheckSplit, CheckSplit]:
    """Split check images into (selection, reporting): every other image of each class, in path order.

    Images of unknown class are split the same way among themselves.
    """
    classes = images.truth if images.truth is not None else np.full(len(images.pixels), -1)
    chosen = np.zeros(len(classes), dtype=bool)
    for value in np.unique(classes):
        rows = np.flatnonzero(classes == value)
        chosen[rows[::2]] = True
    if chosen.all() or not chosen.any():
        raise DatasetError(f"an agreement target needs at least 2 check images to split into selection and "
                           f"reporting halves, got {len(classes)}; add images or pass --selection DIR")
    return (images.take(np.flatnonzero(chosen), f"every other image of each class of {images.description}"),
            images.take(np.flatnonzero(~chosen), f"the other half of {images.description}"))


class Int8Variants(Protocol):
    """One format's int8 builds of one model, calibrated once, differing in the layers left in float."""

    source: SourceModel  # the model the variants are built from (equalized like the plain artifact)

    def candidates(self, errors: list[LayerError]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """Candidates from the debugger's rows, worst first: (nodes the quantizer skips, their Keras layers).

        A candidate is one op, or ops that only stay float together (see OnnxInt8Variants).
        """

    def build(self, nodes: Sequence[str], layers: Sequence[str], path: Path) -> Path:
        """Write the int8 artifact with `nodes` in float (metadata lists `layers`) to `path`."""


@dataclass(frozen=True)
class Target:
    """An agreement target on one set of images."""

    min_agreement: Optional[float]
    max_drop: Optional[float]

    def met(self, parity: Parity) -> bool:
        if self.min_agreement is not None and parity.top1_agreement < self.min_agreement:
            return False
        if self.max_drop is not None and parity.accuracy is not None and parity.reference_accuracy is not None:
            return parity.reference_accuracy - parity.accuracy <= self.max_drop + 1e-12
        return True

    def describe(self) -> str:
        parts = ([f"top-1 agreement >= {self.min_agreement:.1%}"] if self.min_agreement is not None else []) + \
                ([f"accuracy drop <= {self.max_drop * 100:g} points"] if self.max_drop is not None else [])
        return " and ".join(parts)


@dataclass(frozen=True)
class FloatLayers:
    """What reaching the target cost one int8 artifact.

    Attributes:
        target: the target, in words.
        layers: Keras layers kept in float (empty: plain int8 met the target).
        nodes: the quantizer's names for them (TFLite tensors, ONNX nodes).
        met: whether the written artifact meets the target on the selection images.
        selection_images: how many images chose the layers.
        selection_before: top-1 agreement of plain int8 on the selection images.
        selection_after: the same for the written artifact.
        agreement_before: top-1 agreement of plain int8 on the reporting images.
        agreement_after: the same for the written artifact.
        accuracy_before: accuracy of plain int8 on the reporting images (None without labels).
        accuracy_after: the same for the written artifact.
        latency_ms_plain: median single-image latency of plain int8, this run.
        latency_ms: the same for the written artifact (None when no layer was kept).
        tried: (layers in float, selection agreement) for every variant built.
    """

    target: str
    layers: tuple[str, ...]
    nodes: tuple[str, ...]
    met: bool
    selection_images: int
    selection_before: float
    selection_after: float
    agreement_before: float
    agreement_after: float
    accuracy_before: Optional[float]
    accuracy_after: Optional[float]
    latency_ms_plain: Optional[float] = None
    latency_ms: Optional[float] = None
    tried: tuple[tuple[int, float], ...] = ()

    @property
    def latency_ratio(self) -> Optional[float]:
        if self.latency_ms is None or not self.latency_ms_plain:
            return None
        return self.latency_ms / self.latency_ms_plain

    def to_dict(self) -> dict:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data.update(layers=list(self.layers), nodes=list(self.nodes), tried=[list(t) for t in self.tried],
                    latency_ratio=self.latency_ratio)
        return data


def reach_target(fmt: Format, variants_of, source: SourceModel, path: Path, calibration: Calibration, options: ConvertOptions,
                 selection: CheckSplit, reporting: CheckSplit, before: Parity,
                 progress: Progress) -> tuple[Parity, FloatLayers]:
    """Keep the fewest layers of the int8 artifact at `path` in float until the target holds on `selection`.

    `before` is the plain artifact's parity on `reporting`. The artifact at
    `path` is replaced when a variant is chosen. Returns its parity on
    `reporting` and the price.
    """
    target = Target(options.min_agreement, options.max_drop)
    plain = _parity(path, selection)
    result = FloatLayers(target.describe(), (), (), target.met(plain), len(selection.pixels),
                         plain.top1_agreement, plain.top1_agreement, before.top1_agreement, before.top1_agreement,
                         before.accuracy, before.accuracy)
    if result.met:
        return before, result
    with tempfile.TemporaryDirectory(prefix="edgelite-float-layers-") as folder:
        work = Path(folder)
        progress(f"ranking int8 layers of {path.name}", 0, 1)
        variants: Int8Variants = variants_of(source, calibration, options, work)
        errors = rank_layers(fmt, variants.source, np.concatenate(list(calibration())), options)
        ranked = _unique(variants.candidates(errors))
        tried: dict[int, tuple[Path, Parity]] = {}

        def attempt(count: int) -> bool:
            nodes, layers = _flat(ranked[:count])
            progress(f"{path.name}: {count} layer{'s' if count > 1 else ''} in float", count, len(ranked))
            built = variants.build(nodes, layers, work / f"variant-{count}{path.suffix}")
            tried[count] = (built, _parity(built, selection))
            return target.met(tried[count][1])

        count = _smallest_meeting(attempt, len(ranked))
        if count is None:  # nothing met it: the best agreement tried, if better than plain
            count = max(tried, key=lambda k: (tried[k][1].top1_agreement, -k), default=None)
            if count is None or tried[count][1].top1_agreement <= plain.top1_agreement:
                return before, replace(result, tried=_tried(tried))
        built, chosen_parity = tried[count]
        plain_copy = work / f"plain{path.suffix}"
        os.replace(path, plain_copy)
        os.replace(built, path)
        after = _parity(path, reporting)
        progress(f"timing {path.name}", 0, 1)
        latency_plain, latency = time_pair(plain_copy, path, reporting.pixels[:1])
    nodes, layers = _flat(ranked[:count])
    return after, replace(result, layers=layers, nodes=nodes,
                          met=target.met(chosen_parity), selection_after=chosen_parity.top1_agreement,
                          agreement_after=after.top1_agreement, accuracy_after=after.accuracy,
                          latency_ms_plain=latency_plain, latency_ms=latency, tried=_tried(tried))


def _smallest_meeting(attempt, available: int) -> Optional[int]:
    """The smallest count found meeting the target: 1, 2, 4, ... then bisect down from the first hit."""
    low, count = 0, 1
    while True:
        count = min(count, available)
        if count < 1:
            return None
        if attempt(count):
            break
        if count == available:
            return None
        low, count = count, count * 2
    high = count
    while high - low > 1:
        middle = (low + high) // 2
        if attempt(middle):
            high = middle
        else:
            low = middle
    return high


def _unique(ranked: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The candidates less the nodes an earlier one already keeps in float (and those left empty)."""
    seen: set[str] = set()
    unique = []
    for nodes, layers in ranked:
        kept = []
        for node, layer in zip(nodes, layers):
            if node not in seen:
                seen.add(node)
                kept.append((node, layer))
        if kept:
            unique.append((tuple(n for n, _ in kept), tuple(layer for _, layer in kept)))
    return unique


def _flat(candidates) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """All nodes of `candidates`, and their Keras layers once each, in rank order."""
    nodes = tuple(node for group, _ in candidates for node in group)
    return nodes, tuple(dict.fromkeys(layer for _, layers in candidates for layer in layers))


def _tried(tried: dict[int, tuple[Path, Parity]]) -> tuple[tuple[int, float], ...]:
    return tuple((count, parity.top1_agreement) for count, (_, parity) in sorted(tried.items()))


def _parity(path: Path, images: CheckSplit) -> Parity:
    return check_parity(path, "int8", images.pixels, images.reference, images.truth)


def time_pair(first: Path, second: Path, image: np.ndarray) -> tuple[float, float]:
    """Median single-image latency in ms of two artifacts, timed in turn so load changes hit both alike."""
    models = [load(first), load(second)]
    for model in models:
        model.run(image)  # warm-up: first-run allocation is no part of the price
    times: list[list[float]] = [[], []]
    deadline = time.perf_counter() + 2 * TIMING_SECONDS
    while time.perf_counter() < deadline or len(times[1]) < MIN_TIMED_RUNS:
        for model, spent in zip(models, times):
            start = time.perf_counter()
            model.run(image)
            spent.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


__all__ = ["CheckSplit", "FloatLayers", "Int8Variants", "Target", "reach_target", "split_check", "time_pair"]
