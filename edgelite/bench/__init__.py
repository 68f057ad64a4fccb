"""`bench`: measure artifacts side by side, each in a fresh process, and pick one to ship.

    from edgelite.bench import BenchOptions, run_bench, write_json
    report = run_bench([Path("m_float32.tflite"), Path("m_int8.tflite")],
                       BenchOptions(threads=(1, 2), data=Path("val"), reference=Path("m.keras")))
    write_json(report, Path("bench.json"))

Each (model, thread count) runs in `python -m edgelite.bench.worker`, so its
memory figures are its own and a model that crashes its process is one row
with an `error`. The JSON schema is documented in `edgelite.bench.schema`.
"""

from edgelite.bench.options import BenchOptions
from edgelite.bench.job import WorkerJob
from edgelite.bench.pick import pick_fastest
from edgelite.bench.report import write_csv, write_json, write_plot
from edgelite.bench.runner import BenchReport, run_bench
from edgelite.bench.schema import SCHEMA_VERSION
from edgelite.errors import PickError

__all__ = ["BenchOptions", "BenchReport", "PickError", "SCHEMA_VERSION", "pick_fastest", "run_bench",
           "WorkerJob", "write_csv", "write_json", "write_plot"]
