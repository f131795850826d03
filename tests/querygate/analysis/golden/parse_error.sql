-- dialect: duckdb
-- decision: reject
-- expect: parse-error error 2:17
-- message: incomplete PAREN
SELECT n_name FROM
  nation WHERE (
