-- dialect: duckdb
-- decision: allow
SELECT kind, count(*)
FROM events
WHERE ts >= TIMESTAMP '2024-03-01' AND ts < TIMESTAMP '2024-03-02'
GROUP BY kind
