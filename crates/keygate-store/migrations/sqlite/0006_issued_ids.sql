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

-- Earlier versions let a chosen id have the shape of a keygate id (`<prefix>_` and 16 letters or
-- digits; any prefix, as `--prefix` may have changed), even equal one of the same tenant, and
-- looked the chosen id up first, so that id could name the wrong token. Now a path id of that
-- shape always means a keygate id, and such a token goes by its keygate id.
UPDATE tokens SET external_id = NULL
    WHERE length(external_id) BETWEEN 19 AND 33
      AND substr(external_id, -17, 1) = '_'
      AND substr(external_id, -16) NOT GLOB '*[^0-9A-Za-z]*'
      AND substr(external_id, 1, 1) GLOB '[a-z]'
      AND substr(external_id, 1, length(external_id) - 17) NOT GLOB '*[^a-z0-9]*';

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
