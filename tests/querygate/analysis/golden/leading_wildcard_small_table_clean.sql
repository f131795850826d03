-- dialect: duckdb
-- decision: allow
SELECT n_name
FROM nation
WHERE n_comment LIKE '%final%'
