-- dialect: duckdb
-- decision: allow
SELECT d, repeat('-', 10) AS rule, lpad(CAST(d AS VARCHAR), 12, '0') AS padded
FROM range(DATE '2024-01-01', DATE '2025-01-01', INTERVAL 1 DAY) AS t(d)
LIMIT 400
