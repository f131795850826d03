-- dialect: duckdb
-- decision: allow
-- policy: allow_writes=true
DELETE FROM orders WHERE o_orderkey = 1
