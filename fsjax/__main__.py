"""`python -m fsjax`: the command line without the console script on PATH."""

import sys

from ._cli import entry

sys.exit(entry())
