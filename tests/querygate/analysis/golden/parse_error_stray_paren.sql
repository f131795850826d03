-- dialect: postgres
-- decision: reject
-- expect: parse-error error 2:15
SELECT n_name FROM nation
WHERE (a + 1) ) > 2
