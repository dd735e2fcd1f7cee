"""The people and apps of tests/fixtures/dify.sql, and the product rule:
logs are visible to the owner and admins of the app's workspace, and to the
app's creator while they are still a member; banned accounts never."""

TENANT_A = "aaaaaaaa-0000-4000-8000-000000000001"
TENANT_B = "bbbbbbbb-0000-4000-8000-000000000001"

USERS = {
    "owner_a": "a0000000-0000-4000-8000-00000000000a",
    "admin_a": "a0000000-0000-4000-8000-00000000000b",
    "editor_a": "a0000000-0000-4000-8000-00000000000c",
    "normal_a": "a0000000-0000-4000-8000-00000000000d",
    "dsop_a": "a0000000-0000-4000-8000-00000000000e",
    "banned_admin_a": "a0000000-0000-4000-8000-00000000000f",
    "left_creator": "a0000000-0000-4000-8000-000000000010",
    "owner_b": "b0000000-0000-4000-8000-00000000000a",
}
BANNED = {"banned_admin_a"}

# (workspace, user) -> role
ROLES = {
    (TENANT_A, "owner_a"): "owner",
    (TENANT_A, "admin_a"): "admin",
    (TENANT_A, "editor_a"): "editor",
    (TENANT_A, "normal_a"): "normal",
    (TENANT_A, "dsop_a"): "dataset_operator",
    (TENANT_A, "banned_admin_a"): "admin",
    (TENANT_B, "owner_b"): "owner",
    (TENANT_A, "owner_b"): "normal",
}

# name -> (id, workspace, creator)
APPS = {
    "a-editor-app": ("a1a1a1a1-0000-4000-8000-000000000001", TENANT_A, "editor_a"),
    "a-orphan-app": ("a1a1a1a1-0000-4000-8000-000000000002", TENANT_A, "left_creator"),
    "a-legacy-app": ("a1a1a1a1-0000-4000-8000-000000000003", TENANT_A, None),
    "a-normal-app": ("a1a1a1a1-0000-4000-8000-000000000004", TENANT_A, "normal_a"),
    "b-app": ("b1b1b1b1-0000-4000-8000-000000000001", TENANT_B, "owner_b"),
}

CONVERSATION = {"a-editor-app": "c0000000-0000-4000-8000-0000000000a1", "b-app": "c0000000-0000-4000-8000-0000000000b1"}
MESSAGE = {"a-editor-app": "d0000000-0000-4000-8000-0000000000a1", "b-app": "d0000000-0000-4000-8000-0000000000b1"}
RUN = {"a-editor-app": "e0000000-0000-4000-8000-0000000000a1", "b-app": "e0000000-0000-4000-8000-0000000000b1"}


def may_read_logs(user, app):
    """The product rule, stated once, from the fixture's facts."""
    if user in BANNED:
        return False
    _, tenant, creator = APPS[app]
    role = ROLES.get((tenant, user))
    if role in ("owner", "admin"):
        return True
    return creator == user and role is not None


# The Dify pack's workspace-scoped policies (as in rules/dify.yaml), for
# tests that need them in their own configs.
POLICY_SQL = {
    "owner": """SELECT 1 FROM apps a
  JOIN tenant_account_joins j ON j.tenant_id = a.tenant_id
  JOIN accounts ac ON ac.id = j.account_id
 WHERE a.id = :app_id AND j.account_id::text = :subject
   AND j.role = 'owner' AND ac.status = 'active'""",
    "admin": """SELECT 1 FROM apps a
  JOIN tenant_account_joins j ON j.tenant_id = a.tenant_id
  JOIN accounts ac ON ac.id = j.account_id
 WHERE a.id = :app_id AND j.account_id::text = :subject
   AND j.role = 'admin' AND ac.status = 'active'""",
    "creator": """SELECT 1 FROM apps a
  JOIN tenant_account_joins j ON j.tenant_id = a.tenant_id AND j.account_id = a.created_by
  JOIN accounts ac ON ac.id = a.created_by
 WHERE a.id = :app_id AND a.created_by::text = :subject AND ac.status = 'active'""",
}


# The same on MySQL (rules/dify.yaml's mysql texts): ids are CHAR(36) text,
# compared without casts.
MYSQL_POLICY_SQL = {
    "owner": """SELECT 1 FROM apps a
  JOIN tenant_account_joins j ON j.tenant_id = a.tenant_id
  JOIN accounts ac ON ac.id = j.account_id
 WHERE a.id = :app_id AND j.account_id = :subject
   AND j.role = 'owner' AND ac.status = 'active'""",
    "admin": """SELECT 1 FROM apps a
  JOIN tenant_account_joins j ON j.tenant_id = a.tenant_id
  JOIN accounts ac ON ac.id = j.account_id
 WHERE a.id = :app_id AND j.account_id = :subject
   AND j.role = 'admin' AND ac.status = 'active'""",
    "creator": """SELECT 1 FROM apps a
  JOIN tenant_account_joins j ON j.tenant_id = a.tenant_id AND j.account_id = a.created_by
  JOIN accounts ac ON ac.id = a.created_by
 WHERE a.id = :app_id AND a.created_by = :subject AND ac.status = 'active'""",
}


def identity_yaml(secret):
    """The `identity:` section for Dify console tokens: every place Dify
    reads one from, HS256 with `secret`, subject in user_id."""
    return """identity:
  secret: "%s"
  algorithms: [HS256]
  sources: ["cookie:__Host-access_token", "cookie:access_token", "header:Authorization", "query:_token"]
  subject_claim: user_id
  issuer: SELF_HOSTED
  require_exp: true
  leeway: 5s
""" % secret


def policies_yaml(*names, dialect="postgresql"):
    """YAML entries for the named policies, to go under `policies:`, in
    dialect (postgresql or mysql)."""
    sql = MYSQL_POLICY_SQL if dialect == "mysql" else POLICY_SQL
    out = []
    for n in names:
        out.append("  %s: |" % n)
        out += ["    " + line for line in sql[n].splitlines()]
    return "\n".join(out) + "\n"
