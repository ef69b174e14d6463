-- Verifications counted per token and outcome: one row per token per minute and per hour (kept
-- 31 days) and per UTC day (kept 400 days). Each flush adds its counts to all three (an upsert
-- that adds), so several nodes' counts sum up, and a chart by hour or a tenant's top list over
-- a day reads one row per token and hour instead of sixty. `at` is the bucket's start in Unix
-- milliseconds.
-- `tenant_id` is copied from the token so a tenant's totals need no join, and so the counts
-- of a deleted token still belong to its tenant.
CREATE TABLE usage_minute (
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
CREATE INDEX usage_minute_by_tenant ON usage_minute (tenant_id, at);

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

CREATE TABLE usage_day (
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
CREATE INDEX usage_day_by_tenant ON usage_day (tenant_id, at);
