-- dialect: duckdb
-- decision: reject
-- expect: parse-error error 1:45
-- message: Expecting )
SELECT n_name FROM nation WHERE n_name IN (1
