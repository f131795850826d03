-- dialect: postgres
-- decision: reject
-- expect: ambiguous-column error 1:8
-- suggestion: a.n_name or b.n_name
SELECT n_name
FROM nation AS a, nation AS b
WHERE a.n_nationkey = b.n_nationkey
