"""``python -m simulator.radio``: the virtual air with echo bands (see testband.py)."""

import sys

from simulator.radio.testband import main

sys.exit(main())
