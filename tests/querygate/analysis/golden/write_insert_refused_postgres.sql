-- dialect: postgres
-- decision: reject
-- expect: write-not-allowed error 1:1
INSERT INTO region (r_regionkey, r_name, r_comment) VALUES (9, 'MARS', 'new')
