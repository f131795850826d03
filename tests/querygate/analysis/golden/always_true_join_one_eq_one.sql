-- dialect: duckdb
-- decision: warn
-- expect: always-true-join warn 3:18
SELECT n.n_name, r.r_name
FROM nation AS n
JOIN region AS r ON 1 = 1
