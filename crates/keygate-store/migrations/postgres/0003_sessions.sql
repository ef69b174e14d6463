-- Web sessions: the SHA-256 of the cookie's value (the value itself is never stored), the user
-- it logs in, and the CSRF token the page must echo in a header on every change.
CREATE TABLE sessions (
    hash        BYTEA PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
