-- dialect: duckdb
-- decision: reject
-- expect: parse-error error 2:18
SELECT 'あいう' AS s
  FROM nation t2 t3
