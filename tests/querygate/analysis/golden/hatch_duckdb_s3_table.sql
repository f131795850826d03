-- dialect: duckdb
-- decision: reject
-- expect: file-path-table error 2:6
-- message: 's3://bucket/*.parquet'
SELECT count(*)
FROM 's3://bucket/*.parquet'
