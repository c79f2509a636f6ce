"""Lets `python -m docroute_unit` run the same command as the `docroute-unit` console script."""

import sys

from docroute_unit.cli import main

if __name__ == "__main__":
    sys.exit(main())
