-- dialect: duckdb
-- decision: warn
-- expect: select-star warn 1:8
-- suggestion: attr_01, attr_02, attr_03
SELECT *
FROM wide_dim
LIMIT 10
