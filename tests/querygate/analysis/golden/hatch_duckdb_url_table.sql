-- dialect: duckdb
-- decision: reject
-- expect: file-path-table error 2:6
-- message: 'https://example.com/x.parquet'
SELECT *
FROM 'https://example.com/x.parquet'
