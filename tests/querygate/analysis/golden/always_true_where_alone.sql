-- dialect: duckdb
-- decision: warn
-- expect: always-true-where warn 3:7
SELECT n_name
FROM nation
WHERE 1 = 1
