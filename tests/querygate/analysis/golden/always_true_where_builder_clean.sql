-- dialect: duckdb
-- decision: allow
SELECT n_name
FROM nation
WHERE 1 = 1 AND n_regionkey = 2
