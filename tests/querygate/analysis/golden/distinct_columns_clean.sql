-- dialect: duckdb
-- decision: allow
SELECT DISTINCT n_regionkey
FROM nation
