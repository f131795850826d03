"""The demo, in one place: `make run`'s seed data and banner, the TPC-H/TPC-DS DuckDB
warehouses, and the simulated node agents. Production code never imports it (an
import-linter contract); the Kubernetes emulator it drives is `kube_emulator/`."""
