"""`edgelite demo`: train, convert and predict on the bundled sample, offline."""

from __future__ import annotations

from pathlib import Path

import click

COMMANDS: list = []
