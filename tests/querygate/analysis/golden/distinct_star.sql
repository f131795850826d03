-- dialect: duckdb
-- decision: warn
-- expect: distinct-star warn 1:17
SELECT DISTINCT *
FROM nation
