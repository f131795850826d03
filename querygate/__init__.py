"""The query gate between analysts and the shared warehouse.

- analysis/  pure: parse, qualify against the catalog, lint rules, cost estimate
- engines/   one module per warehouse engine behind the Engine protocol
"""
