-- keygate schema v1 (PostgreSQL). Times are Unix milliseconds (UTC), as in the SQLite schema, so
-- both backends share one set of queries. `enabled` is a SMALLINT (0/1) for the same reason.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_at    BIGINT NOT NULL,
    UNIQUE (tenant_id, username)
);

CREATE TABLE tokens (
    seq           BIGSERIAL PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    hash          BYTEA NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    description   TEXT,
    metadata      TEXT,
    owner_id      TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    enabled       SMALLINT NOT NULL CHECK (enabled IN (0, 1)),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    last_used_ip  TEXT,
    created_by    TEXT
);
CREATE INDEX tokens_by_tenant ON tokens (tenant_id, seq);
CREATE INDEX tokens_by_owner ON tokens (tenant_id, owner_id, seq);

CREATE TABLE audit (
    seq        BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target_id  TEXT,
    ip         TEXT,
    details    TEXT
);
CREATE INDEX audit_by_tenant ON audit (tenant_id, seq);

-- The change feed that keeps every node's cache coherent: each token write adds the token's
-- hash here in the same transaction and notifies `keygate_token_changes`; nodes listen, and
-- also poll recent rows so that a missed notification costs at most one poll interval.
CREATE TABLE token_changes (
    id    BIGSERIAL PRIMARY KEY,
    at    BIGINT NOT NULL,
    hash  BYTEA NOT NULL
);
CREATE INDEX token_changes_by_time ON token_changes (at);
