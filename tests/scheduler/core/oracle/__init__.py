"""The scheduling core as it was before the cycle speed-up of issue 17 (commit 38a3453),
kept as the oracle ``test_oracle.py`` compares the optimised ``scheduler.core`` against.

Only the modules the speed-up touched or that call them are copied (cycle, cache,
placement, preemption, fairshare, gangs); the snapshot and decision types are the real
ones. A change of *policy* (what the cycle decides) goes to both; a change of speed only
to ``scheduler.core``. Never import this outside the tests.
"""
