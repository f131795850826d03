-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: read_text()
SELECT *
FROM read_text('data/x')
