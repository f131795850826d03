-- dialect: postgres
-- decision: allow
SELECT current_setting('TimeZone')
