"""`python -m xnh ...`: the `xnh` command without the console script."""
from .cli import cli

cli()
