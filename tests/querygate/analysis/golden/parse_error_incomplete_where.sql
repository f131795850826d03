-- dialect: duckdb
-- decision: reject
-- expect: parse-error error 1:32
-- message: incomplete WHERE
SELECT n_name FROM nation WHERE
