"""PyTorch classifiers as a convert source: `torch.export` programs (.pt2), run by torch for parity.

    edgelite convert model.pt2 --out artifacts --preprocess imagenet --calibration data/train

    from edgelite.convert.pytorch import convert_module
    report = convert_module(net, torch.randn(1, 3, 224, 224), Path("artifacts"), options)

A `.pt2` file is read with `torch.export.load`, never `torch.load`: a pickle
runs whatever code it carries, so `.pt`/`.pth` files are refused with the two
lines that export one. The program goes to ONNX with `torch.onnx.export` and on
from there as an ONNX source does (edgelite/convert/onnx_input.py); parity is
checked against the program itself, run by torch. Only the [torch] extra
installs torch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from edgelite.convert.onnx_input import (ImageInput, image_input, normalized_nchw, onnx_source, read_onnx,
                                         run_in_batches)
from edgelite.convert.source import LoadRequest, Normalization, SourceModel
from edgelite.errors import ConversionError, ModelFileError, missing_dependency

if TYPE_CHECKING:
    from edgelite.convert import ConvertReport
    from edgelite.convert.options import ConvertOptions

HOW_TO_EXPORT = ("save one with torch.export.save(torch.export.export(model.eval(), "
                 "(torch.randn(1, 3, H, W),)), 'model.pt2')")


def import_torch():
    """torch, or an install hint."""
    try:
        import torch
    except ImportError:
        raise missing_dependency("PyTorch", "torch") from None
    return torch


def load_exported_program(path: Path, request: LoadRequest) -> SourceModel:
    """A `.pt2` program as a `SourceModel`.

    Raises:
        ModelFileError: not a whole torch.export program, or not one image input.
        OptionError: --preprocess not given.
        DependencyError: torch or onnx2tf missing.
    """
    torch = import_torch()
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # zipfile, torch's deserializer and friends
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelFileError(f"{path.name}: not a torch.export program edgelite can read ({first}); "
                             f"{HOW_TO_EXPORT}") from None
    return program_source(path, program, request)


def program_source(path: Path, program: Any, request: LoadRequest) -> SourceModel:
    """A `SourceModel` from a loaded `ExportedProgram` (see the module docstring)."""
    image = program_input(program, path.name)
    with tempfile.TemporaryDirectory(prefix="edgelite-torch-") as work:
        onnx_path = Path(work) / "model.onnx"
        _export_onnx(program, image, onnx_path)
        model = read_onnx(onnx_path)
    exported = image_input(model, path.name)
    module = program.module()
    return onnx_source(path, model, exported, request, lambda scaling: TorchReference(module, image, scaling),
                       notes=["the program went to ONNX with torch.onnx.export, and to TFLite through onnx2tf"])


def program_input(program: Any, name: str) -> ImageInput:
    """The program's one image input (batch None when the program was exported with a dynamic batch).

    Raises:
        ModelFileError: not exactly one tensor input of shape (N, 3, H, W) with fixed H and W.
    """
    user_inputs = list(program.graph_signature.user_inputs)
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    if len(user_inputs) != 1:
        raise ModelFileError(f"{name}: expected one image input (N, 3, H, W), got {len(user_inputs)} inputs "
                             f"({', '.join(user_inputs)})")
    value = nodes[user_inputs[0]].meta.get("val")
    shape = tuple(getattr(value, "shape", ()))
    fixed = [int(d) if isinstance(d, int) else None for d in shape]
    if len(fixed) != 4 or fixed[1] != 3 or not fixed[2] or not fixed[3] or not value.dtype.is_floating_point:
        raise ModelFileError(f"{name}: expected a float image input (N, 3, H, W), got {user_inputs[0]!r} "
                             f"{tuple(str(d) for d in shape)} of {getattr(value, 'dtype', 'no tensor type')}")
    return ImageInput(user_inputs[0], fixed[0], fixed[2], fixed[3])


def _export_onnx(program: Any, image: ImageInput, path: Path) -> None:
    torch = import_torch()
    example = torch.zeros((image.batch or 1, 3, image.height, image.width))
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it warns about each torchvision op it cannot find, torchvision being absent
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
            torch.onnx.export(program, (example,), str(path), dynamo=True, external_data=False)
    except ImportError as exc:
        raise missing_dependency(exc.name or "onnxscript", "torch") from None
    except Exception as exc:  # the exporter raises many kinds
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConversionError(f"torch.onnx.export failed: {first}") from None
    finally:
        quiet.setLevel(level)


class TorchReference:
    """The exported program run by torch on raw pixels, normalised here in numpy."""

    def __init__(self, module: Any, image: ImageInput, scaling: Normalization):
        self._module, self._image, self._scaling = module, image, scaling

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        torch = import_torch()

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                output = self._module(torch.from_numpy(batch))
            return output.detach().numpy()

        return run_in_batches(run, self._image.batch, normalized_nchw(pixels, self._scaling))


def convert_module(module: Any, example: Any, out: Path, options: ConvertOptions, name: str = "model",
                   dynamic_batch: bool = True) -> ConvertReport:
    """Convert an `nn.Module` like a `.pt2` file: export it with torch.export, then `convert`.

    Args:
        module: the classifier (put in eval mode here).
        example: an example input, a (1, 3, H, W) float tensor.
        out: the folder for the artifacts.
        options: as for `edgelite.convert.convert` (give `preprocess`).
        name: the stem of the artifact names.
        dynamic_batch: export with a dynamic batch dimension.

    Raises:
        ConversionError: torch.export could not capture the module.
    """
    torch = import_torch()
    from edgelite.convert import convert

    shapes: Optional[tuple] = ({0: torch.export.Dim("batch", max=1024)},) if dynamic_batch else None
    if dynamic_batch:  # torch.export fixes a dimension it sees at 1: trace a batch of 2
        example = torch.cat([example[:1], example[:1]])
    try:
        program = torch.export.export(module.eval(), (example,), dynamic_shapes=shapes)
    except Exception as exc:  # torch.export raises many kinds
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConversionError(f"torch.export could not capture the module: {first}") from None
    with tempfile.TemporaryDirectory(prefix="edgelite-torch-") as work:
        path = Path(work) / f"{name}.pt2"
        torch.export.save(program, str(path))
        return convert(path, out, options)
