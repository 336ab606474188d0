"""`python -m app` runs the `mr2probe` command line (same as the console script)."""
import sys

from .cli import main

sys.exit(main())
