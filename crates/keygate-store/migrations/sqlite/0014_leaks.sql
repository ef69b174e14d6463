-- Leaks reported by secret scanners (DESIGN §16: GitHub's partner program, GitLab's Token
-- Revocation API).

-- A token reported leaked, recorded once: the first report acts on the token (the tenant's
-- onLeak), later ones only count. Keyed by the token's id, and found by its hash, which stays
-- after a revoked token's row is gone: a repeated report of a revoked token is still known as
-- this deployment's, a true positive, without acting again. No foreign key to tokens for the
-- same reason.
CREATE TABLE leaked_tokens (
    token_id          TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    token_hash        BLOB NOT NULL UNIQUE,
    -- Who reported it first (github, gitlab), where it was found, and what was done (the
    -- onLeak of the tenant at the time: revoke, disable, notify).
    reporter          TEXT NOT NULL,
    location          TEXT,
    action            TEXT NOT NULL,
    first_reported_at BIGINT NOT NULL,
    last_reported_at  BIGINT NOT NULL,
    reports           BIGINT NOT NULL
);
CREATE INDEX leaked_tokens_by_tenant ON leaked_tokens (tenant_id, first_reported_at);

-- Every GitHub report accepted, by its signature (r||s with s normalised to the low half, so
-- that the other valid encoding of the same signature is the same row), with the answer it
-- got, the record of what GitHub was told: a replay of a signed report is refused.
CREATE TABLE leak_report_signatures (
    signature   BLOB PRIMARY KEY,
    key_id      TEXT NOT NULL,
    answer      TEXT NOT NULL,
    accepted_at BIGINT NOT NULL
);
CREATE INDEX leak_report_signatures_by_time ON leak_report_signatures (accepted_at);
