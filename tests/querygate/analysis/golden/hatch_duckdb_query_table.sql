-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: query_table()
SELECT *
FROM query_table('data/x')
