-- dialect: duckdb
-- decision: reject
-- expect: table-function-not-allowed error 3:38
-- message: read_text()
SELECT n_name
FROM nation
WHERE n_name IN (SELECT content FROM read_text('/etc/passwd'))
