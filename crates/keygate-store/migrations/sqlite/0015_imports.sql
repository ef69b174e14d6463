-- Where a token imported by its hash came from ("import": POST /api/v1/tokens/import, "unkey":
-- Unkey's keys.migrateKeys); NULL for a token keygate minted.
ALTER TABLE tokens ADD COLUMN imported_from TEXT;
