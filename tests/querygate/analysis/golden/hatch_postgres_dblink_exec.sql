-- dialect: postgres
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: dblink_exec()
SELECT dblink_exec('host=x', 'drop table t')
