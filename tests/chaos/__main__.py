"""``python -m tests.chaos``: the chaos run (see tests/chaos/cli.py)."""

import sys

from tests.chaos.cli import main

sys.exit(main())
