"""`python -m probe` runs the `mr2probe` command line (same as the console script)."""
import sys

from app.cli import main

sys.exit(main())
