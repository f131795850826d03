-- dialect: postgres
-- decision: reject
-- expect: parse-error error 1:33
SELECT n_name FROM nation GROUP n_name
