-- dialect: duckdb
-- decision: reject
-- expect: parse-error error 2:16
SELECT n_name FROM
  nation WHERE (
