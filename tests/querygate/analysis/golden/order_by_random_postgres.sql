-- dialect: postgres
-- decision: warn
-- expect: order-by-random warn 3:10
-- suggestion: TABLESAMPLE SYSTEM
SELECT n_name
FROM nation
ORDER BY RANDOM()
LIMIT 5
