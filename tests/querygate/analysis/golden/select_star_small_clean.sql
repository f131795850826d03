-- dialect: duckdb
-- decision: allow
SELECT *
FROM nation
