-- dialect: postgres
-- decision: reject
-- expect: statement-not-allowed error 1:1
-- message: SET
SET statement_timeout = 0
