-- A tenant always keeps an admin user, so that someone can log in to manage it. The database
-- checks it, in the transaction of the write that would take the last admin away: a check made
-- by the server before writing let two admins demoted or deleted at once both go. SQLite runs
-- one writer at a time, so this count sees every earlier write. The message is matched by the
-- store (sql.rs) to answer 409.
CREATE TRIGGER users_keep_an_admin_on_demote AFTER UPDATE OF role ON users
WHEN OLD.role = 'admin' AND NEW.role <> 'admin'
BEGIN
    SELECT RAISE(ABORT, 'keygate: a tenant keeps an admin')
    WHERE NOT EXISTS (SELECT 1 FROM users WHERE tenant_id = OLD.tenant_id AND role = 'admin');
END;

CREATE TRIGGER users_keep_an_admin_on_delete AFTER DELETE ON users
WHEN OLD.role = 'admin'
BEGIN
    SELECT RAISE(ABORT, 'keygate: a tenant keeps an admin')
    WHERE NOT EXISTS (SELECT 1 FROM users WHERE tenant_id = OLD.tenant_id AND role = 'admin');
END;
