-- dialect: postgres
-- decision: reject
-- expect: statement-not-allowed error 1:1
-- message: COPY
COPY (SELECT 1) TO STDOUT
