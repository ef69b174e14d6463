-- Verifications per token and hour, written with the minute and day rows (kept 31 days, as the
-- minute rows): a chart by hour, or a tenant's top list over a day or a month, reads one row per
-- token and hour instead of sixty.
CREATE TABLE usage_hour (
    token_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    valid BIGINT NOT NULL DEFAULT 0,
    rate_limited BIGINT NOT NULL DEFAULT 0,
    usage_exceeded BIGINT NOT NULL DEFAULT 0,
    insufficient_scope BIGINT NOT NULL DEFAULT 0,
    disabled BIGINT NOT NULL DEFAULT 0,
    expired BIGINT NOT NULL DEFAULT 0,
    ip_not_allowed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (token_id, at)
);
CREATE INDEX usage_hour_by_tenant ON usage_hour (tenant_id, at);
