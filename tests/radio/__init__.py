"""The virtual radio through bleak's public API (fixtures in conftest.py, helpers in sim.py)."""
