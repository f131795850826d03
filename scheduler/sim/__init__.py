"""Trace simulator: replays public GPU-cluster traces through ``scheduler.core.plan_cycle``.

A simulated clock, no second copy of the policy. ``traces`` loads the Alibaba openb and
Microsoft Philly traces; ``simulator.simulate`` replays them and returns ``Metrics``.
"""
