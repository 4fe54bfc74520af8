"""``python -m multiseal``: the same command line as ``multiseal`` (sweeps start their points this way)."""

import sys

from multiseal.cli import main

sys.exit(main())
