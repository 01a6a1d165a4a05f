"""The chaos run: the whole chain (firmware fleet, bridge, mosquitto, VictoriaMetrics)
under a scripted fault schedule, checked by an exactly-once oracle.

``python -m tests.chaos --help`` (``make chaos``: a simulated day; tests/test_chaos.py:
a compressed run inside ``make test``).

- schedule.py: the fault kinds and the schedule over simulated time
- observe.py: what arrived (a deduping MQTT consumer, VictoriaMetrics read-back, the spool)
- oracle.py: logged vs delivered, duplicated, lost, dropped by the overflow policy; the table
- run.py: starts the chain, injects the faults, times each recovery
- cli.py: the command line: options and their checks, the printed report, the JSON
"""
