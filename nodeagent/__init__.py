"""The node agent: reads NVML and cgroups on a GPU node and posts readings to the portal.

It imports no Django (import-linter checks it), so it ships as a small, separate process.
"""
