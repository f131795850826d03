"""The scheduler's one write path. Each module holds the state changes of one concern:

- inventory.py   sync nodes and GPUs from the cluster
- jobs.py        the job state machine writer (`transition_job`) and JobSpec building
- reconcile.py   repair the database and the cluster after anything (crash, outage)
"""
