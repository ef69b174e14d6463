-- An id a compatible surface's client chose for a token (Instana's `internalId`), unique per tenant.
ALTER TABLE tokens ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX tokens_by_external_id ON tokens (tenant_id, external_id);
