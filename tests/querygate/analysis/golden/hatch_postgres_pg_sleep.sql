-- dialect: postgres
-- decision: reject
-- expect: function-not-allowed error 1:8
-- message: pg_sleep()
SELECT pg_sleep(600)
