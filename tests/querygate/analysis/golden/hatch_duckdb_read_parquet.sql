-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: read_parquet()
SELECT *
FROM read_parquet('data/x')
