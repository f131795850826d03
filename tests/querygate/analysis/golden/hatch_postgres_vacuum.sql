-- dialect: postgres
-- decision: reject
-- expect: statement-not-allowed error 1:1
-- message: VACUUM
VACUUM region
