-- dialect: postgres
-- decision: reject
-- expect: statement-not-allowed error 1:1
-- message: DO
DO $$ BEGIN PERFORM 1; END $$
