"""Adapters to the cluster behind the ClusterBackend protocol; only this imports kubernetes."""
