-- Every keygate token id, and every id a compatible surface's client chose (Instana's
-- `internalId`, per tenant), ever given: rows outlive their token, so neither kind of id is ever
-- given again. An id in an audit history, a log line or a client's configuration then names one
-- token forever, never a later one that reused it.
CREATE TABLE issued_token_ids (
    id  TEXT PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE issued_external_ids (
    tenant_id    TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, external_id)
) WITHOUT ROWID;

INSERT INTO issued_token_ids (id) SELECT id FROM tokens;
INSERT INTO issued_external_ids (tenant_id, external_id)
    SELECT tenant_id, external_id FROM tokens WHERE external_id IS NOT NULL;

-- Earlier versions let a chosen id equal a keygate id of the same tenant, and looked the chosen
-- id up first, so that id named the wrong token. Such a token goes by its keygate id from now on.
UPDATE tokens SET external_id = NULL
    WHERE external_id IS NOT NULL
      AND EXISTS (SELECT 1 FROM tokens AS t
                  WHERE t.tenant_id = tokens.tenant_id AND t.id = tokens.external_id);

-- A second use of an id is a unique violation here, so the write that tried it fails whole.
CREATE TRIGGER token_ids_issued_on_insert AFTER INSERT ON tokens BEGIN
    INSERT INTO issued_token_ids (id) VALUES (NEW.id);
    INSERT INTO issued_external_ids (tenant_id, external_id)
        SELECT NEW.tenant_id, NEW.external_id WHERE NEW.external_id IS NOT NULL;
END;

CREATE TRIGGER token_ids_issued_on_change AFTER UPDATE OF id, tenant_id, external_id ON tokens BEGIN
    INSERT INTO issued_token_ids (id) SELECT NEW.id WHERE NEW.id IS NOT OLD.id;
    INSERT INTO issued_external_ids (tenant_id, external_id)
        SELECT NEW.tenant_id, NEW.external_id
        WHERE NEW.external_id IS NOT NULL
          AND (NEW.external_id IS NOT OLD.external_id OR NEW.tenant_id IS NOT OLD.tenant_id);
END;
