"""`edgelite bench`."""

COMMANDS: list = []
