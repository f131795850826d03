-- dialect: postgres
-- decision: reject
-- expect: unprunable-partition-filter error 3:7
-- suggestion: ts >= CAST('2024-03-01' AS TIMESTAMP) AND ts < CAST('2024-03-01' AS TIMESTAMP) + INTERVAL '1 DAY'
SELECT count(*)
FROM events
WHERE date_trunc('day', ts) = TIMESTAMP '2024-03-01'
