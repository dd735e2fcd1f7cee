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
-- This file: Dify >= 1.15.0 on MySQL, after invalidate.mysql.sql (which
-- creates the counter): agents, the chatflows that bind them, and apps'
-- maintainer (the app's owner for Dify's access control).

-- Then, in portcullis' environment (the Dify pack reads it):
--   PORTCULLIS_INVALIDATE_QUERY="SELECT changes FROM portcullis_changes WHERE id = 1"
-- and grant portcullis' database user SELECT on portcullis_changes.
--
-- Row triggers (MySQL has no statement triggers): a statement that changes
-- many rows bumps the counter once per row, inside its transaction. Updates
-- that cannot change a decision (a login's timestamps, a new icon) leave
-- the counter, and its row lock, alone.

-- apps: another maintainer
DROP TRIGGER IF EXISTS portcullis_apps_maintainer_upd;
CREATE TRIGGER portcullis_apps_maintainer_upd AFTER UPDATE ON apps FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1 AND NOT (OLD.maintainer <=> NEW.maintainer);

-- agents: a new or removed agent, or another workspace or app
DROP TRIGGER IF EXISTS portcullis_agents_ins;
CREATE TRIGGER portcullis_agents_ins AFTER INSERT ON agents FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1;

DROP TRIGGER IF EXISTS portcullis_agents_upd;
CREATE TRIGGER portcullis_agents_upd AFTER UPDATE ON agents FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1 AND NOT (OLD.tenant_id <=> NEW.tenant_id AND OLD.app_id <=> NEW.app_id);

DROP TRIGGER IF EXISTS portcullis_agents_del;
CREATE TRIGGER portcullis_agents_del AFTER DELETE ON agents FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1;

-- a chatflow that starts or stops using an agent: its conversations join
-- or leave the agent's logs
DROP TRIGGER IF EXISTS portcullis_workflow_agent_node_bindings_ins;
CREATE TRIGGER portcullis_workflow_agent_node_bindings_ins AFTER INSERT ON workflow_agent_node_bindings FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1;

DROP TRIGGER IF EXISTS portcullis_workflow_agent_node_bindings_upd;
CREATE TRIGGER portcullis_workflow_agent_node_bindings_upd AFTER UPDATE ON workflow_agent_node_bindings FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1 AND NOT (OLD.tenant_id <=> NEW.tenant_id AND OLD.app_id <=> NEW.app_id AND OLD.agent_id <=> NEW.agent_id);

DROP TRIGGER IF EXISTS portcullis_workflow_agent_node_bindings_del;
CREATE TRIGGER portcullis_workflow_agent_node_bindings_del AFTER DELETE ON workflow_agent_node_bindings FOR EACH ROW
    UPDATE portcullis_changes SET changes = changes + 1 WHERE id = 1;
