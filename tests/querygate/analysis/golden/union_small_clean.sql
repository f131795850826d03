-- dialect: duckdb
-- decision: allow
SELECT n_name FROM nation
UNION
SELECT r_name FROM region
