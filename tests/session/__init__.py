"""Band sessions through bleak on the virtual radio (fixtures in conftest.py, rig in rig.py)."""
