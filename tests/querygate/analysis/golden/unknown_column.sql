-- dialect: postgres
-- decision: reject
-- expect: unknown-column error 2:8
-- suggestion: Did you mean n_name
SELECT n_regionkey,
       n_nam
FROM nation
