-- dialect: duckdb
-- decision: warn
-- expect: always-true-where warn 3:27
SELECT n_name
FROM nation
WHERE n_regionkey = 1 AND n_name = n_name
