-- Usage control. `external_ref` is the deployer's own id for whoever holds the token (the API's
-- `externalId`): many tokens may share one, so it is not unique. (The older `external_id`
-- column is another thing: an id a compatible surface's client chose, unique per tenant.)
ALTER TABLE tokens ADD COLUMN external_ref TEXT;
CREATE INDEX tokens_by_external_ref ON tokens (tenant_id, external_ref, seq);

-- The token's named rate limits, a JSON array; NULL when it has none.
ALTER TABLE tokens ADD COLUMN ratelimits TEXT;

-- Credits: NULL means unlimited. `credits_remaining` is the pool not yet leased to a node;
-- nodes take credits from it in batches and give back what they did not spend (see
-- docs/credits.md). `credits_refill` is a JSON object, NULL when credits never refill;
-- `credits_period` is the start (ms) of the refill period last applied. A change that sets
-- the credits outright bumps `credits_version`, and leases taken under an older version are
-- then void.
ALTER TABLE tokens ADD COLUMN credits_remaining BIGINT;
ALTER TABLE tokens ADD COLUMN credits_refill TEXT;
ALTER TABLE tokens ADD COLUMN credits_period BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN credits_version BIGINT NOT NULL DEFAULT 0;
