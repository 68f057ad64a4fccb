"""`--pick`: the fastest artifact whose accuracy stays within a budget of the reference's."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from edgelite.errors import OptionError, PickError


def pick_fastest(rows: Sequence[dict[str, Any]], reference_accuracy: Optional[float],
                 max_drop: float, min_agreement: Optional[float] = None) -> dict[str, Any]:
    """The artifact row with the lowest p50 latency among those within `max_drop` of the reference.

    An int8 artifact that `convert --min-agreement` built with some layers kept
    in float competes with its own measured latency and accuracy, so what those
    layers cost and what they buy are both weighed; the pick names them.

    Args:
        rows: bench rows (see `edgelite.bench.schema`); Keras rows and failed rows never qualify.
        reference_accuracy: top-1 accuracy of the reference model, as a fraction.
        max_drop: the accuracy the pick may lose, in percentage points (1.0 = one point).
        min_agreement: if given, the top-1 agreement with the reference (in
            percent) the pick must also reach.

    Returns:
        The `pick` section of the report: budgets, and the chosen row's name,
        path, threads, p50 latency, accuracy, agreement and float layers.

    Raises:
        OptionError: there is no reference accuracy to measure the drop from.
        PickError: no artifact is within the budget.
    """
    if max_drop < 0:
        raise OptionError(f"--max-drop is in accuracy points and cannot be negative, got {max_drop}")
    if reference_accuracy is None:
        raise OptionError("--pick needs the reference's accuracy: pass --data DIR with one sub-folder per class, "
                          "named like the model's labels")
    if min_agreement is not None and not 0 <= min_agreement <= 100:
        raise OptionError(f"--min-agreement is a percentage between 0 and 100, got {min_agreement:g}")
    floor = reference_accuracy - max_drop / 100.0
    candidates = [row for row in rows if row.get("kind") == "artifact" and not row.get("error")
                  and row.get("accuracy") is not None and row["accuracy"] >= floor - 1e-9]
    result: dict[str, Any] = {"max_drop": max_drop, "reference_accuracy": reference_accuracy,
                              "min_accuracy": floor, "min_agreement": min_agreement}
    if not candidates:
        raise PickError(f"no artifact reaches {floor:.1%} top-1 accuracy (the reference's {reference_accuracy:.1%} "
                        f"less {max_drop:g} points); raise --max-drop or convert with more calibration images")
    if min_agreement is not None:
        candidates = [row for row in candidates
                      if row.get("agreement") is not None and row["agreement"] >= min_agreement / 100 - 1e-9]
        if not candidates:
            raise PickError(f"no artifact within the accuracy budget agrees with the reference on {min_agreement:g}% "
                            "of the images; lower --min-agreement, or convert with --min-agreement to keep the "
                            "layers that need it in float")
    best = min(candidates, key=lambda row: (row["latency_ms"]["p50"], row.get("size_bytes") or 0))
    result.update({"name": best["name"], "path": best["path"], "threads": best["threads"],
                   "latency_p50_ms": best["latency_ms"]["p50"], "accuracy": best["accuracy"],
                   "agreement": best.get("agreement"), "float_layers": list(best.get("float_layers") or [])})
    return result
