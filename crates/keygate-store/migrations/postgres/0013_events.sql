-- Events (DESIGN: webhooks, expiry warnings, reuse detection, tenant policy).

-- A tenant's webhook endpoints. `events` is the subscription as ",name,name," (",*," for all),
-- so that the outbox write below matches it with one LIKE and no second table. `secret` is
-- the signing key (whsec_…): keygate must sign with it, so it is stored as given, and it is
-- shown only when the endpoint is created. The lease says which node delivers this endpoint's
-- queue, and until when: one delivery in flight per endpoint, in order, on any number of nodes.
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    url             TEXT NOT NULL,
    description     TEXT,
    events          TEXT NOT NULL,
    secret          TEXT NOT NULL,
    enabled         BIGINT NOT NULL,
    disabled_reason TEXT,
    -- The first failure since the last success: after the retry window of failures the
    -- endpoint is disabled.
    failing_since   BIGINT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, id);

-- The outbox: one row per event and subscribed endpoint, written in the transaction of the
-- change it tells of, so an event is never lost and never sent for a change that rolled back.
-- `payload` is the exact body to send (it never holds a secret). `state`: pending, delivered,
-- failed. `retry_until` ends the retries (24 h after the event, or after a redelivery).
CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    endpoint_id     TEXT NOT NULL,
    tenant_id       TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    retry_until     BIGINT NOT NULL,
    last_attempt_at BIGINT,
    last_status     BIGINT,
    last_latency_ms BIGINT,
    last_error      TEXT,
    delivered_at    BIGINT
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (created_at);

-- A tenant's token policy; a tenant without a row has the defaults.
CREATE TABLE tenant_policies (
    tenant_id            TEXT PRIMARY KEY REFERENCES tenants(id),
    max_lifetime_seconds BIGINT,
    require_expiry       BIGINT NOT NULL DEFAULT 0,
    on_reuse             TEXT NOT NULL DEFAULT 'notify',
    on_leak              TEXT NOT NULL DEFAULT 'revoke',
    updated_at           BIGINT NOT NULL
);

-- The token this one replaced by rotation (the reverse of rotated_to), for the lists.
ALTER TABLE tokens ADD COLUMN rotated_from TEXT;

-- When the expiry scanner should next look at a token (Unix ms), and the last notice it sent
-- (seconds before expiry of the threshold warned about; 0: `token.expired`). Only tokens with
-- an expiry and a notice still to come have a time, so the scanner reads an index of due rows
-- rather than every token.
ALTER TABLE tokens ADD COLUMN expiry_notice_at BIGINT;
ALTER TABLE tokens ADD COLUMN expiry_notice_stage BIGINT;
CREATE INDEX tokens_expiry_notice ON tokens (expiry_notice_at) WHERE expiry_notice_at IS NOT NULL;
-- Tokens that expire in the future are looked at once; those already expired get no event.
UPDATE tokens SET expiry_notice_at = 0
WHERE expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT;
