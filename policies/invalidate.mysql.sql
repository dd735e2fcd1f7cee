-- portcullis: faster revocation on MySQL, MariaDB and compatible servers.
--
-- MySQL has no LISTEN/NOTIFY. Instead, these triggers bump a change counter
-- whenever something the Dify pack's policies read changes, and portcullis
-- polls it (cache.invalidate_query, every cache.invalidate_poll): when the
-- counter moves, every worker empties its decision cache. Without them, a
-- demotion, a removal from a workspace or a ban takes effect within
-- cache.ttl.
--
-- Install into Dify's database as Dify's own database user (root in Dify's
-- compose file): the triggers run with their creator's rights, and with
-- binary logging on (MySQL 8's default) creating them needs SUPER or
-- log_bin_trust_function_creators. Safe to run again.
--
-- This file: every Dify on MySQL (>= 1.10.1). On Dify >= 1.15.0, also run
-- invalidate-agents.mysql.sql (agents, and apps' maintainer).

-- Then, in portcullis' environment (the Dify pack reads it):
--   PORTCULLIS_INVALIDATE_QUERY="SELECT changes FROM portcullis_changes WHERE id = 1"
-- and grant portcullis' database user SELECT on portcullis_changes.
--
-- Row triggers (MySQL has no statement triggers): a statement that changes
-- many rows bumps the counter once per row, inside its transaction. Updates
-- that cannot change a decision (a login's timestamps, a new icon) leave
-- the counter, and its row lock, alone.

CREATE TABLE IF NOT EXISTS portcullis_changes (
    id TINYINT NOT NULL PRIMARY KEY,
    changes BIGINT UNSIGNED NOT NULL
);
INSERT IGNORE INTO portcullis_changes (id, changes) VALUES (1, 0);

-- memberships and roles: every change
DROP TRIGGER IF EXISTS portcullis_tenant_account_joins_ins;
CREATE TRIGGER portcullis_tenant_account_joins_ins AFTER INSERT ON tenant_account_joins FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1;

DROP TRIGGER IF EXISTS portcullis_tenant_account_joins_upd;
CREATE TRIGGER portcullis_tenant_account_joins_upd AFTER UPDATE ON tenant_account_joins FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1;

DROP TRIGGER IF EXISTS portcullis_tenant_account_joins_del;
CREATE TRIGGER portcullis_tenant_account_joins_del AFTER DELETE ON tenant_account_joins FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1;

-- accounts: a ban (status), a new address (access lists name emails), or an
-- account removed; not a login
DROP TRIGGER IF EXISTS portcullis_accounts_upd;
CREATE TRIGGER portcullis_accounts_upd AFTER UPDATE ON accounts FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1
       AND NOT (OLD.status <=> NEW.status AND OLD.email <=> NEW.email);

DROP TRIGGER IF EXISTS portcullis_accounts_del;
CREATE TRIGGER portcullis_accounts_del AFTER DELETE ON accounts FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1;

-- apps: a new or removed app, or another workspace or creator
DROP TRIGGER IF EXISTS portcullis_apps_ins;
CREATE TRIGGER portcullis_apps_ins AFTER INSERT ON apps FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1;

DROP TRIGGER IF EXISTS portcullis_apps_upd;
CREATE TRIGGER portcullis_apps_upd AFTER UPDATE ON apps FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1 AND NOT (OLD.tenant_id <=> NEW.tenant_id AND OLD.created_by <=> NEW.created_by);

DROP TRIGGER IF EXISTS portcullis_apps_del;
CREATE TRIGGER portcullis_apps_del AFTER DELETE ON apps FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1;

-- knowledge bases: a new or removed one, or another workspace
DROP TRIGGER IF EXISTS portcullis_datasets_ins;
CREATE TRIGGER portcullis_datasets_ins AFTER INSERT ON datasets FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1;

DROP TRIGGER IF EXISTS portcullis_datasets_upd;
CREATE TRIGGER portcullis_datasets_upd AFTER UPDATE ON datasets FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1 AND NOT (OLD.tenant_id <=> NEW.tenant_id);

DROP TRIGGER IF EXISTS portcullis_datasets_del;
CREATE TRIGGER portcullis_datasets_del AFTER DELETE ON datasets FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1;
