"""`convert`: turn a Keras checkpoint into checked TFLite and ONNX artifacts.

    from edgelite.convert import ConvertOptions, convert
    report = convert(Path("model.keras"), Path("out"), ConvertOptions(calibration=Path("val")))

Each exporter (one module per format) writes one artifact; this module picks
the images, runs the exporters, checks every artifact against the Keras model
and writes `manifest.json`. TensorFlow is imported only when converting.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from edgelite import __version__
from edgelite.atomic import write_bytes_atomic
from edgelite.convert.agreement import CheckSplit, FloatLayers, reach_target, split_check
from edgelite.convert.formats import OUTPUT_FORMATS
from edgelite.convert.options import (COMPAT_RUNTIMES, LAST_TFLITE_RUNTIME, MIN_CALIBRATION_IMAGES, Calibration,
                                      ConvertOptions)
from edgelite.convert.parity import Parity, check_parity, class_indices
from edgelite.convert.source import SourceModel, load_checkpoint, sha256_of
from edgelite.convert.staging import STAGING_PREFIX, Staging, missing_folders, remove_empty, remove_stale
from edgelite.errors import ConversionError, DatasetError, ImageError, OptionError, OutputExistsError, ParityError
from edgelite.lazy import quiet_native
from edgelite.modes import Format, Precision, Progress, no_progress
from edgelite.runtime.folder import pixel_batches, read_folder
from edgelite.runtime.op_versions import minimum_runtime, too_new_for, version_key
from edgelite.runtime.tflite_format import read_tflite_file

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ArtifactReport:
    """One written artifact and its parity with the source model."""

    path: Path
    format: Format
    precision: Precision
    size_bytes: int
    sha256: str
    parity: Parity
    min_runtime: Optional[str] = None
    float_layers: Optional[FloatLayers] = None  # with an agreement target: the layers kept in float, the price

    def to_dict(self) -> dict:
        data = {"file": self.path.name, "format": self.format, "precision": self.precision,
                "size_bytes": self.size_bytes, "sha256": self.sha256, "min_runtime": self.min_runtime,
                "parity": self.parity.to_dict()}
        if self.float_layers is not None:
            data["float_layers"] = self.float_layers.to_dict()
        return data


@dataclass
class ConvertReport:
    """What `convert` wrote and found."""

    source: Path
    out: Path
    artifacts: list[ArtifactReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    check_folder: Optional[Path] = None
    check_images: Optional[str] = None  # with an agreement target: which check images the parity is on
    selection_images: Optional[str] = None  # and which chose the float layers

    @property
    def failed(self) -> list[ArtifactReport]:
        """Artifacts that miss the --strict thresholds."""
        return [a for a in self.artifacts if not a.parity.passed]


@dataclass
class _Images:
    """The check images with the Keras model's outputs on them, and the calibration batches."""

    calibration: Calibration
    check_pixels: np.ndarray
    reference: np.ndarray
    truth: Optional[np.ndarray]
    selection: Optional[CheckSplit] = None  # with an agreement target: the images that choose float layers


def _load_pixels(folder: Path, limit: int, source: SourceModel, what: str, report: ConvertReport,
                 progress: Progress) -> tuple[np.ndarray, list[Optional[str]]]:
    """Decode a folder's images; an unreadable one is skipped, counted in a warning."""
    items = read_folder(folder, limit=limit)
    meta = source.metadata
    batches: list[np.ndarray] = []
    unreadable: dict[Path, ImageError] = {}
    for batch in pixel_batches([i.path for i in items], meta.input_height, meta.input_width, meta.interpolation,
                               decode=meta.decode, on_error=unreadable.__setitem__):
        batches.append(batch.astype(np.uint8))  # resized pixels are whole numbers: uint8 keeps them exactly
        progress(f"reading {what} images", sum(len(b) for b in batches) + len(unreadable), len(items))
    if unreadable:
        first = next(iter(unreadable.values()))
        if not batches:
            raise DatasetError(f"{folder}: none of its {len(items)} images could be read (first: {first})")
        report.warnings.append(f"skipped {len(unreadable)} unreadable {what} image{'s' if len(unreadable) > 1 else ''}"
                               f" of {len(items)} (first: {first})")
    return np.concatenate(batches), [i.label for i in items if i.path not in unreadable]


def _no_calibration() -> Iterable[np.ndarray]:
    return iter(())


def _read_images(source: SourceModel, options: ConvertOptions, check_folder: Path, report: ConvertReport,
                 progress: Progress) -> _Images:
    """Phase 2: decode the calibration and check images, and run the Keras model on the check images."""
    calibration: Calibration = _no_calibration
    if options.calibration is not None:
        calibration_pixels, _ = _load_pixels(options.calibration, options.max_calibration_images,
                                             source, "calibration", report, progress)
        if len(calibration_pixels) < MIN_CALIBRATION_IMAGES:
            report.warnings.append(
                f"only {len(calibration_pixels)} calibration images (about {MIN_CALIBRATION_IMAGES} "
                "or more give steadier int8 ranges)")

        def calibration() -> Iterable[np.ndarray]:
            for start in range(0, len(calibration_pixels), 32):
                yield calibration_pixels[start:start + 32].astype(np.float32)

    check_pixels, check_labels = _load_pixels(check_folder, options.max_check_images, source, "check", report,
                                              progress)
    check_pixels = check_pixels.astype(np.float32)
    with quiet_native():
        reference = source.run_reference(check_pixels)  # by the source's own framework (Keras, torch, onnxruntime)
    images = _Images(calibration, check_pixels, reference, class_indices(check_labels, source.metadata.labels))
    return _split_for_target(images, source, options, check_folder, report, progress) if options.has_target \
        else images


def _split_for_target(images: _Images, source: SourceModel, options: ConvertOptions, check_folder: Path,
                      report: ConvertReport, progress: Progress) -> _Images:
    """Set apart the images that choose the float layers: the --selection folder, or half the check images."""
    check = CheckSplit(images.check_pixels, images.reference, images.truth, str(check_folder))
    if options.selection is not None:
        pixels, labels = _load_pixels(options.selection, options.max_check_images, source, "selection", report,
                                      progress)
        pixels = pixels.astype(np.float32)
        with quiet_native():
            reference = source.run_reference(pixels)
        selection = CheckSplit(pixels, reference, class_indices(labels, source.metadata.labels),
                               str(options.selection))
        reporting = check
    else:
        selection, reporting = split_check(check)
    report.selection_images = f"{len(selection.pixels)} images: {selection.description}"
    report.check_images = f"{len(reporting.pixels)} images: {reporting.description}"
    return _Images(images.calibration, reporting.pixels, reporting.reference, reporting.truth, selection)


def _check_runtime(path: Path, options: ConvertOptions) -> Optional[str]:
    """The oldest TFLite runtime that loads `path`; with --compat, fail if that is too new."""
    codes = read_tflite_file(path).operator_codes
    if options.compat is not None:
        missing = too_new_for(codes, COMPAT_RUNTIMES[options.compat])
        if missing:
            ops = ", ".join(f"{r.op} v{r.version} (needs {r.runtime or 'an unknown runtime'})" for r in missing)
            raise ConversionError(f"{path.name} does not load in {options.compat}: {ops}")
    return minimum_runtime(codes)


def _artifact_name(checkpoint: Path, fmt: Format, precision: Precision) -> str:
    return OUTPUT_FORMATS[fmt].artifact_name(checkpoint.stem, precision)


def _check_out(checkpoint: Path, out: Path, options: ConvertOptions) -> None:
    """Refuse, before any work, an --out that cannot be a folder or holds entries this run cannot replace."""
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {out} is a file; expected a folder (new or existing)")
    existing = next((p for p in out.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise OptionError(f"--out {out}: {existing} is a file, so no folder can be made under it")
    _check_replaceable([out / _artifact_name(checkpoint, f, p) for f, p in options.targets()] + [out / MANIFEST],
                       options.force)


def _check_replaceable(paths: list[Path], force: bool) -> None:
    """Refuse an entry already there without --force, and one that is a folder even with it."""
    for path in paths:
        if not os.path.lexists(path):
            continue
        if not force:
            raise OutputExistsError(f"{path} already exists; pass --force to replace it, or choose another --out")
        if path.is_dir() and not path.is_symlink():
            raise OptionError(f"{path} is a folder; convert replaces only files: move it away, or choose "
                              "another --out")


def _write_artifacts(source: SourceModel, checkpoint: Path, out: Path, options: ConvertOptions, images: _Images,
                     report: ConvertReport, progress: Progress) -> None:
    """Phase 3: write and check every artifact in a staging folder, move them into `out`, write the manifest.

    On any failure, Ctrl-C included, exactly what this run created is removed
    (its staging folder, the files it moved into `out`, the folders it made if
    they are empty) and the files it was replacing are put back. Files others
    put in `out` meanwhile stay.
    """
    created = missing_folders(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError(f"cannot create the --out folder {out}: {exc.strerror or exc}") from None
    report.notes.extend(remove_stale(out))
    staging = Staging.create(out)
    installed: list[Path] = []
    try:
        with staging.temp_files():
            written = _export_all(source, checkpoint, staging.folder, options, images, progress)
        finals = [out / path.name for path, *_ in written] + [out / MANIFEST]
        _check_replaceable(finals, options.force)  # again: something may have been put there while this run worked
        for final in finals:
            if os.path.lexists(final):
                staging.set_aside(final)
        for path, fmt, precision, parity, min_runtime, float_layers in written:
            final = out / path.name
            path.replace(final)
            installed.append(final)
            report.artifacts.append(ArtifactReport(final, fmt, precision, final.stat().st_size,
                                                   sha256_of(final), parity, min_runtime, float_layers))
        report.warnings.extend(_missed_targets(report.artifacts))
        installed.append(out / MANIFEST)
        write_manifest(report, source)
    except BaseException as exc:
        restored = staging.restore(installed)
        staging.close(remove=restored)
        if not restored:
            raise ConversionError(f"{str(exc) or type(exc).__name__}; some of the files it was replacing could not be "
                                  f"put back: they are in {staging.folder}") from exc
        remove_empty(created)
        raise
    staging.close()


def _missed_targets(artifacts: list[ArtifactReport]) -> list[str]:
    missed = []
    for a in artifacts:
        if a.float_layers is not None and not a.float_layers.met and not a.float_layers.tried:
            missed.append(f"{a.path.name} misses the target ({a.float_layers.target}) on the selection images, and "
                          "no layer could be kept in float: none of the layers ranked by their int8 error was found "
                          "in its int8 graph; it is plain int8")
        elif a.float_layers is not None and not a.float_layers.met:
            missed.append(f"{a.path.name} misses the target ({a.float_layers.target}) on the selection images with "
                          f"{len(a.float_layers.layers)} layers in float (best tried: "
                          f"{a.float_layers.selection_after:.1%}); the parity columns show what it gives")
    return missed


def _export_all(source: SourceModel, checkpoint: Path, folder: Path, options: ConvertOptions, images: _Images,
                progress: Progress) -> list[tuple[Path, Format, Precision, Parity, Optional[str],
                                                  Optional[FloatLayers]]]:
    """Write and check every requested artifact in `folder` (int8 ones to the agreement target, if any)."""
    targets = options.targets()
    written = []
    for done, (fmt, precision) in enumerate(targets):
        progress(f"writing {fmt} {precision}", done, len(targets))
        with quiet_native():
            path = OUTPUT_FORMATS[fmt].exporter(source, folder / _artifact_name(checkpoint, fmt, precision),
                                                precision, images.calibration, options)
        progress(f"checking {fmt} {precision}", done, len(targets))
        parity = check_parity(path, precision, images.check_pixels, images.reference, images.truth)
        float_layers = None
        variants = OUTPUT_FORMATS[fmt].int8_variants
        if precision == "int8" and images.selection is not None and variants is not None:
            reporting = CheckSplit(images.check_pixels, images.reference, images.truth, "")
            with quiet_native():
                parity, float_layers = reach_target(fmt, variants, source, path, images.calibration, options,
                                                    images.selection, reporting, parity, progress)
        min_runtime = _check_runtime(path, options) if fmt == "tflite" else None
        written.append((path, fmt, precision, parity, min_runtime, float_layers))
    progress("done", len(targets), len(targets))
    return written


def runtime_note(artifacts: list[ArtifactReport]) -> Optional[str]:
    """Which artifacts the last tflite-runtime release cannot load, and what to do, or None."""
    newer = [a for a in artifacts
             if a.min_runtime and version_key(a.min_runtime) > version_key(LAST_TFLITE_RUNTIME)]
    if not newer:
        return None
    needed = max((a.min_runtime for a in newer if a.min_runtime), key=version_key)
    names = ", ".join(a.path.name for a in newer)
    last = ".".join(LAST_TFLITE_RUNTIME.split(".")[:2])
    return (f"{names} need{'s' if len(newer) == 1 else ''} TFLite {needed} or newer (ai-edge-litert); "
            f"tflite-runtime {last} cannot load {'it' if len(newer) == 1 else 'them'}: "
            "convert with --compat tflite-runtime-2.14 for one it can load")


def convert(checkpoint: Path, out: Path, options: ConvertOptions, progress: Progress = no_progress) -> ConvertReport:
    """Convert `checkpoint` into every requested artifact in `out`, each checked for parity.

    Artifacts are built in a staging folder inside `out` and moved into place
    only when all of them are written, so a failure, Ctrl-C included, leaves
    `out` as it was: only what this run created is removed, and with
    `options.force` the files it was replacing are put back. A staging folder
    left by a convert killed with -9 is removed by the next run, with a note
    (edgelite/convert/staging.py). Without `options.force`, an artifact or
    manifest.json already in `out` is refused before any work; with it, one
    that is a folder is. With `options.strict`, artifacts that miss
    their parity thresholds raise `ParityError` after everything is written
    (the error carries the report).

    Raises:
        EdgeliteError: bad options, an unreadable checkpoint or images, a failed conversion.
        OutputExistsError: without `force`, a file this run would write is already in `out`.
        OptionError: with `force`, an entry this run would replace is a folder.
        ParityError: with `strict`, an artifact below its threshold.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    check_folder = options.check or options.calibration
    if check_folder is None:
        raise OptionError("the parity check needs real images: pass --check DIR or --calibration DIR")
    _check_out(checkpoint, out, options)
    progress("loading checkpoint", 0, 1)
    with quiet_native():
        source = load_checkpoint(checkpoint, options.labels, options.preprocess, options.interpolation,
                                 options.decode, label_folders=(options.calibration, check_folder),
                                 mean=options.mean, std=options.std)
    report = ConvertReport(checkpoint, out, notes=list(source.notes), check_folder=check_folder)
    images = _read_images(source, options, check_folder, report, progress)
    _write_artifacts(source, checkpoint, out, options, images, report, progress)
    note = runtime_note(report.artifacts)
    if note:
        report.notes.append(note)
    if options.strict and report.failed:
        names = ", ".join(a.path.name for a in report.failed)
        raise ParityError(f"below the --strict parity thresholds: {names} (see {out / MANIFEST})", report)
    return report


def write_manifest(report: ConvertReport, source: SourceModel) -> Path:
    """Write manifest.json beside the artifacts: what they are, their hashes and parity."""
    manifest = {
        "edgelite_version": __version__,
        "source": {"file": report.source.name, "sha256": source.metadata.source_sha256},
        "metadata": json.loads(source.metadata.to_json()),
        "check_images": {"folder": str(report.check_folder),
                         "count": report.artifacts[0].parity.images if report.artifacts else 0,
                         **({"images": report.check_images} if report.check_images else {})},
        **({"selection_images": report.selection_images} if report.selection_images else {}),
        "artifacts": [a.to_dict() for a in report.artifacts],
        "warnings": report.warnings,
    }
    path = report.out / MANIFEST
    write_bytes_atomic(path, (json.dumps(manifest, indent=2) + "\n").encode())
    return path


__all__ = ["ArtifactReport", "ConvertOptions", "ConvertReport", "OUTPUT_FORMATS", "STAGING_PREFIX", "convert",
           "runtime_note", "write_manifest"]
