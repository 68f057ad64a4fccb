"""The model registry: each trainable family is one entry, a builder beside its frozen config.

    @register_model("scratch", ScratchConfig(), "small CNN ...")
    def build_scratch(config, num_classes): ...

`edgelite train <name>` is generated from this table, one option per config
field, so a new family is a new entry, not new plumbing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from edgelite.errors import OptionError


@dataclass(frozen=True)
class ModelFamily:
    """A registered model family.

    Attributes:
        name: the name used on the command line.
        config: the default config, a frozen dataclass with at least `size` and `lr`.
        build: builds an uncompiled Keras model taking raw 0-255 pixels.
        optimizer: makes the family's optimizer from its config.
        summary: one line for `--help`.
        scaling: how the model scales pixels inside its graph, recorded in artifacts.
        smoke: config values for the quickest run that still builds the real
            architecture (tests run every family with them).
    """

    name: str
    config: Any
    build: Callable[[Any, int], Any]
    optimizer: Callable[[Any], Any]
    summary: str
    scaling: str
    smoke: dict

    def configure(self, **overrides: Any) -> Any:
        """The default config with `overrides` applied; unknown names are rejected."""
        known = {f.name for f in dataclasses.fields(self.config)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise OptionError(f"{self.name} has no option {', '.join(unknown)}; it has {', '.join(sorted(known))}")
        return dataclasses.replace(self.config, **overrides)


REGISTRY: dict[str, ModelFamily] = {}


def register_model(name: str, config: Any, summary: str, optimizer: Callable[[Any], Any], scaling: str,
                   smoke: dict):
    """Decorator that adds a builder to the registry under `name`."""

    def decorate(build: Callable[[Any, int], Any]) -> Callable[[Any, int], Any]:
        if name in REGISTRY:
            raise ValueError(f"model family {name!r} is registered twice")
        REGISTRY[name] = ModelFamily(name, config, build, optimizer, summary, scaling, smoke)
        return build

    return decorate


def get_family(name: str) -> ModelFamily:
    """The registered family called `name`."""
    from edgelite.train import models  # noqa: F401  (registers the built-in families)

    if name not in REGISTRY:
        raise OptionError(f"unknown model family {name!r}; expected one of {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def families() -> list[ModelFamily]:
    """Every registered family, by name."""
    from edgelite.train import models  # noqa: F401

    return [REGISTRY[name] for name in sorted(REGISTRY)]
