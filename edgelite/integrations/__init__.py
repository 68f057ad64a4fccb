"""Adapters to other engines, one module per engine, each imported only when asked for.

`edgelite.integrations.ray` runs `predict` on a Ray cluster (the `ray` extra).
"""
