"""Entry point for `python3 -m batchscope_analysis`."""

import sys

from batchscope_analysis.cli import main

if __name__ == "__main__":
    sys.exit(main())
