"""`python -m nnspec ...`: the `nnspec` command (nnspec/cli.py)."""

import sys

from nnspec.cli import entry

if __name__ == "__main__":
    sys.exit(entry())
