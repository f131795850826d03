-- dialect: postgres
-- decision: reject
-- expect: unknown-column error 1:8
-- message: zz is not a table or alias
SELECT zz.n_name
FROM nation AS x
