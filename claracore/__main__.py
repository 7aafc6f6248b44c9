"""`python -m claracore`: the same command line as the `claracore` script."""

import sys

from claracore.cli import main

if __name__ == "__main__":
    sys.exit(main())
