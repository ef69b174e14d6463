-- The networks a token may be used from, a JSON array of CIDR strings; NULL when it may be used
-- from anywhere.
ALTER TABLE tokens ADD COLUMN allowed_cidrs TEXT;
