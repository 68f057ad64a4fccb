"""`edgelite train`."""

COMMANDS: list = []
