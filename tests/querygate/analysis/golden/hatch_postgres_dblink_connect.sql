-- dialect: postgres
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: dblink_connect()
SELECT dblink_connect('host=x')
