-- dialect: duckdb
-- decision: warn
-- expect: order-by-random warn 3:10
-- suggestion: USING SAMPLE
SELECT n_name
FROM nation
ORDER BY random()
LIMIT 5
