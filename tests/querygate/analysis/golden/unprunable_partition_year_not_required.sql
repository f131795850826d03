-- dialect: duckdb
-- decision: warn
-- expect: unprunable-partition-filter warn 3:7
-- suggestion: view_date >= DATE '2024-01-01' AND view_date < DATE '2025-01-01'
SELECT count(*)
FROM page_views
WHERE year(view_date) = 2024
