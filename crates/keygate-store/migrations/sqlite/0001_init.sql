-- keygate schema v1 (SQLite). Times are Unix milliseconds (UTC). Every row carries its tenant.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_at    INTEGER NOT NULL,
    UNIQUE (tenant_id, username)
);

CREATE TABLE tokens (
    -- Insertion order, for stable newest-first paging; the public id is random.
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    -- SHA-256 of the whole token: the only form in which a token is stored.
    hash          BLOB NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    description   TEXT,
    metadata      TEXT,
    owner_id      TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    enabled       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    last_used_ip  TEXT,
    created_by    TEXT
);
CREATE INDEX tokens_by_tenant ON tokens (tenant_id, seq);
CREATE INDEX tokens_by_owner ON tokens (tenant_id, owner_id, seq);

CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT NOT NULL,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target_id  TEXT,
    ip         TEXT,
    details    TEXT
);
CREATE INDEX audit_by_tenant ON audit (tenant_id, seq);
