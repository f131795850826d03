-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 2:6
-- message: parquet_scan()
SELECT *
FROM parquet_scan('data/x')
