"""`python -m app` runs the `mr2probe` command line (same as the console script, app.cli.run)."""
from .cli import run

run()
