"""The model registry: each trainable family is one entry, a builder beside its frozen config.

    @register_model("scratch", ScratchConfig(), "small CNN ...", optimizer=_sgd, scaling="rescale",
                    smoke={"size": 32})
    def build_scratch(config, num_classes): ...

The optional `fine_tune` hook adds a second phase (see `FineTune`).

`edgelite train <name>` is generated from this table, one option per config
field, so a new family is a new entry, not new plumbing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional

from edgelite.errors import OptionError
from edgelite.modes import Scaling


@dataclass(frozen=True)
class FineTune:
    """A second training phase a family asks for: unfreeze part of the model, train on at a lower rate.

    Attributes:
        epochs: epochs of the phase, after the first phase's.
        lr_factor: the learning rate of the phase as a fraction of the config's.
        unfreeze: makes the chosen layers of a built model trainable.
        description: one line for the log.
    """

    epochs: int
    lr_factor: float
    unfreeze: Callable[[Any], None]
    description: str


def no_fine_tune(config: Any) -> Optional[FineTune]:
    """The default hook: a single training phase."""
    return None


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
        fine_tune: the family's fine-tuning phase for a config, or None for none.
    """

    name: str
    config: Any
    build: Callable[[Any, int], Any]
    optimizer: Callable[[Any], Any]
    summary: str
    scaling: Scaling
    smoke: dict
    fine_tune: Callable[[Any], Optional[FineTune]] = no_fine_tune

    def configure(self, **overrides: Any) -> Any:
        """The default config with `overrides` applied; unknown names are rejected."""
        known = {f.name for f in dataclasses.fields(self.config)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise OptionError(f"{self.name} has no option {', '.join(unknown)}; it has {', '.join(sorted(known))}")
        return dataclasses.replace(self.config, **overrides)


REGISTRY: dict[str, ModelFamily] = {}


def register_model(name: str, config: Any, summary: str, optimizer: Callable[[Any], Any], scaling: Scaling,
                   smoke: dict, fine_tune: Callable[[Any], Optional[FineTune]] = no_fine_tune):
    """Decorator that adds a builder to the registry under `name`."""

    def decorate(build: Callable[[Any, int], Any]) -> Callable[[Any, int], Any]:
        if name in REGISTRY:
            raise ValueError(f"model family {name!r} is registered twice")
        REGISTRY[name] = ModelFamily(name, config, build, optimizer, summary, scaling, smoke, fine_tune)
        return build

    return decorate


def get_family(name: str) -> ModelFamily:
    """The registered family called `name` (`edgelite.train` registers the built-in ones)."""
    if name not in REGISTRY:
        raise OptionError(f"unknown model family {name!r}; expected one of {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def families() -> list[ModelFamily]:
    """Every registered family, by name."""
    return [REGISTRY[name] for name in sorted(REGISTRY)]
