"""Surviving mutants of bench/mutation.py that are left alive on purpose, each with the reason.

Keyed by module, then by the mutant's key (``bench/out/mutation/MODULE.json``: the source line's text, the
operator and the change), so an entry outlives edits elsewhere in the file. An equivalent mutant changes
nothing observable; every survivor on the robot side (runtime, observation, safety) must be explained here.
"""

EXPLAINED: dict[str, dict[str, str]] = {}
