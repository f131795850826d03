-- dialect: duckdb
-- decision: reject
-- expect: value-too-large error 1:8
-- suggestion: GROUP BY a finer key
SELECT string_agg(l_comment, ',') FROM lineitem, range(5)
