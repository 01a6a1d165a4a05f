"""Alerts: the rules, their config and delivery (fixtures in conftest.py, helpers beside)."""
