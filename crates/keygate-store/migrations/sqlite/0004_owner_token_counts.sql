-- How many tokens each owner holds, kept by triggers on every path that adds, removes or moves a
-- token, so that the bound on tokens per owner (`--max-tokens-per-owner`) costs a create one row
-- read rather than a count of the owner's tokens.
CREATE TABLE owner_token_counts (
    tenant_id  TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    tokens     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, owner_id)
) WITHOUT ROWID;

INSERT INTO owner_token_counts (tenant_id, owner_id, tokens)
    SELECT tenant_id, owner_id, COUNT(*) FROM tokens GROUP BY tenant_id, owner_id;

CREATE TRIGGER tokens_counted_on_insert AFTER INSERT ON tokens BEGIN
    INSERT INTO owner_token_counts (tenant_id, owner_id, tokens)
        VALUES (NEW.tenant_id, NEW.owner_id, 1)
        ON CONFLICT (tenant_id, owner_id) DO UPDATE SET tokens = tokens + 1;
END;

CREATE TRIGGER tokens_counted_on_delete AFTER DELETE ON tokens BEGIN
    UPDATE owner_token_counts SET tokens = tokens - 1
        WHERE tenant_id = OLD.tenant_id AND owner_id = OLD.owner_id;
END;

CREATE TRIGGER tokens_counted_on_owner_change AFTER UPDATE OF tenant_id, owner_id ON tokens
WHEN OLD.tenant_id IS NOT NEW.tenant_id OR OLD.owner_id IS NOT NEW.owner_id BEGIN
    UPDATE owner_token_counts SET tokens = tokens - 1
        WHERE tenant_id = OLD.tenant_id AND owner_id = OLD.owner_id;
    INSERT INTO owner_token_counts (tenant_id, owner_id, tokens)
        VALUES (NEW.tenant_id, NEW.owner_id, 1)
        ON CONFLICT (tenant_id, owner_id) DO UPDATE SET tokens = tokens + 1;
END;
