-- dialect: duckdb
-- decision: reject
-- expect: file-path-table error 2:6
-- message: 'data.csv'
SELECT *
FROM 'data.csv'
