-- dialect: duckdb
-- decision: reject
-- expect: missing-partition-filter error 2:6
-- suggestion: WHERE ts >= DATE
SELECT count(*)
FROM events
WHERE kind = 'click'
