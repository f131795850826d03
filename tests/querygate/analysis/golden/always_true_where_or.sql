-- dialect: postgres
-- decision: warn
-- expect: always-true-where warn 3:26
-- suggestion: Remove 1 = 1
SELECT n_name
FROM nation
WHERE n_regionkey = 1 OR 1 = 1
