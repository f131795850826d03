-- dialect: duckdb
-- decision: reject
-- expect: unprunable-partition-filter error 3:7
-- suggestion: ts >= CAST('2024-03-01' AS DATE) AND ts < CAST('2024-03-01' AS DATE) + INTERVAL '1' DAY
SELECT count(*)
FROM events
WHERE CAST(ts AS DATE) = DATE '2024-03-01'
