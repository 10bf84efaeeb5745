#!/usr/bin/env python3
"""Generate the decision-case files of the built-in policies and the example.

    python3 plugins/cases/generate.py        # rewrite the three files
    python3 plugins/cases/generate.py --check  # exit 1 if a committed file is stale

Writes policies/account-rbac.cases.json, policies/tenant-roles.cases.json and
plugins/examples/business-hours/business-hours.cases.json. The expectations come from the
tables below, transcribed from the seeds (shared/seeds/002 ngrok RBAC, 003 ImmyBot roles)
and api.md, never from the Rust code: the cases are the independent witness that the
policies say what the seeds say. Requests are latchkey_policy_abi::Request in serde's JSON
form. One case per line, so a change reads as a small diff.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCOUNT = "ac_acme"
OTHER_ACCOUNT = "ac_other"
T0 = 1795435200000  # 2026-11-23 12:00 UTC, a Monday

# ---------------------------------------------------------------- request builders


def roles(developer="ReadOnly", team="ReadOnly", billing="None", admin=False):
    # api.md: omitted role fields default to the least privilege.
    return {"developer": developer, "team": team, "billing": billing, "admin": admin}


def credential(kind="Session", id="ses_1", personal=False, acl=(), scopes=()):
    return {"kind": kind, "id": id, "personal": personal, "acl": list(acl),
            "scopes": list(scopes)}


def principal(kind="User", id="usr_dana", member_roles=None, assignments=(), cred=None,
              account=ACCOUNT):
    return {"kind": kind, "id": id, "account": account, "roles": member_roles,
            "assignments": list(assignments), "mfa": {"enrolled": False, "verified": False},
            "credential": cred, "source_ip": None}


def resource(kind, id, tenant=None, owner=None, permission=None, attributes=(),
             account=ACCOUNT):
    return {"kind": kind, "id": id, "account": account, "tenant": tenant, "owner": owner,
            "permission": permission, "attributes": [list(a) for a in attributes]}


def catalog_index(action):
    """The catalog index the host gives an application action (none when not listed)."""
    return CATALOG.index(action) if action in CATALOG else None


def request(who, action, res, time_ms=T0):
    return {"principal": who, "action": action, "resource": res,
            "context": {"time_ms": time_ms, "values": []}}


def case(name, req, expect):
    assert expect in ("allow", "deny", "not_applicable"), expect
    return {"name": name, "request": req, "expect": expect}


# ---------------------------------------------------------------- account RBAC (seed 002)

# Resources as the API paths name them, with the kind of object each holds.
DEVELOPER_RESOURCES = {  # "objects like Domains, ..., Authtokens, API Keys" + api.md
    "api_keys": "api_key", "credentials": "credential", "ssh_credentials": "ssh_credential",
    "bot_users": "bot_user", "ip_policies": "ip_policy", "ip_policy_rules": "ip_policy_rule",
    "ip_restrictions": "ip_restriction",
}
DEVELOPER_VERBS = ["list", "get", "create", "update", "delete"]
VERBS = {r: DEVELOPER_VERBS for r in DEVELOPER_RESOURCES}
VERBS["credentials"] = DEVELOPER_VERBS + ["rotate", "verify"]
VERBS["users"] = ["list", "get", "create", "update", "update_roles", "disable", "enable", "delete",
                  "password_reset"]
VERBS["invitations"] = ["list", "get", "create", "delete"]
VERBS["billing"] = ["get", "update"]
VERBS["account"] = ["get", "update"]
VERBS["events"] = ["list", "get"]
# Event destinations stream the audit trail, so they are as restricted as reading it: a
# developer (seed 002 lists "Event Destinations" among developer features, for ngrok's
# traffic events) would otherwise read through a destination what GET /events refuses.
VERBS["event_destinations"] = ["list", "get", "create", "update", "delete"]
# Identity providers decide who signs in to the account: account settings, administrators.
VERBS["identity_providers"] = ["list", "get", "create", "update", "delete"]
# SCIM tokens let an identity provider make and remove members: administrators only.
VERBS["scim_tokens"] = ["list", "get", "create", "delete"]
# SCIM group mappings decide the roles an identity provider's groups give: administrators.
VERBS["scim_groups"] = ["list", "get"]
VERBS["scim_group_mappings"] = ["list", "get", "create", "update", "delete"]
for r in ("tenants", "roles", "role_assignments"):
    VERBS[r] = ["list", "get", "create", "update", "delete"]
VERBS["permissions"] = ["list", "get", "create", "delete"]
VERBS["access_review"] = ["get"]
VERBS["policies"] = ["list"]  # the live set, read-only; changing it is the host operator's
TENANCY = ["tenants", "roles", "role_assignments", "permissions", "access_review"]
KIND = dict(DEVELOPER_RESOURCES, users="user", invitations="invitation", billing="billing",
            account="account", events="event", event_destinations="event_destination",
            identity_providers="identity_provider", scim_tokens="scim_token",
            scim_groups="scim_group", scim_group_mappings="scim_group_mapping",
            tenants="tenant", roles="role",
            role_assignments="role_assignment", permissions="permission",
            access_review="access_review", policies="policy_set")
ALL = {(r, v) for r, vs in VERBS.items() for v in vs}


def on(resources, verbs=None):
    return {(r, v) for r in resources for v in (verbs or VERBS[r])}


READ = ["list", "get"]
VERIFY = {("credentials", "verify")}  # api.md /verify: administrators, developers, bots
# What each role value grants, sentence by sentence from seed 002 (and api.md where named).
GRANTS = {
    # "create, modify and delete any developer feature ... not team, billing, settings"
    ("developer", "ReadWrite"): on(DEVELOPER_RESOURCES) | VERIFY,
    # "can view but NOT create, modify or delete developer features"
    ("developer", "ReadOnly"): on(DEVELOPER_RESOURCES, READ) | VERIFY,
    # "invite and remove other users ... modify other users' RBAC settings"; api.md:
    # tenants, roles and assignments are managed by administrators and team managers (the
    # catalog and the access review with them)
    # (password reset links: "an administrator may issue", api.md)
    ("team", "Manager"): on(["users", "invitations"] + TENANCY) - {("users", "password_reset")},
    # "see other members ... and invite new teammates"
    ("team", "Invite"): on(["users"], READ) | on(["invitations"], READ + ["create"]),
    # "can see other members of the account but cannot manage or invite"
    ("team", "ReadOnly"): on(["users"], READ),
    # "may change the subscription plan ... may also view billing history"
    ("billing", "Access"): on(["billing"]),
    ("billing", "None"): set(),
    # "may take all actions within an account"; account settings and events (seeds
    # silent on events: least privilege) only here
    ("admin", True): ALL,
    ("admin", False): set(),
}
# "Bot users ... function as though they have a read/write Developer role and no other".
BOT_GRANTS = GRANTS[("developer", "ReadWrite")]

MEMBERS = {  # name in cases -> roles (each role value appears at least once)
    "developer read_write": roles(developer="ReadWrite"),
    "developer read_only": roles(),
    "team manager": roles(team="Manager"),
    "team invite": roles(team="Invite"),
    "team read_only": roles(team="ReadOnly"),
    "billing access": roles(billing="Access"),
    "billing none": roles(billing="None"),
    "administrator": roles(admin=True),
}


def member_grants(r):
    return (GRANTS[("developer", r["developer"])] | GRANTS[("team", r["team"])]
            | GRANTS[("billing", r["billing"])] | GRANTS[("admin", r["admin"])])


def member(name, cred=None):
    return principal("User", "usr_" + name.replace(" ", "_"), MEMBERS[name], cred=cred)


BOT = principal("Bot", "bot_ci", None)
SYSTEM = principal("System", "system", None)


# What the host states about an ordinary object of each resource: no administrator
# involved, not used by a dashboard restriction. The policy reads a missing restrictive
# attribute as restricting (fail closed), so the matrix states them; cases below leave
# them out on purpose.
ORDINARY = {
    "users": [("target_admin", "false"), ("grants_admin", "false")],
    "invitations": [("grants_admin", "false"), ("exceeds_own_roles", "false")],
    "ip_restrictions": [("type", "api")],
    "ip_policies": [("used_by_dashboard", "false")],
    "ip_policy_rules": [("used_by_dashboard", "false")],
    "api_keys": [("owner_admin", "false")],
    "credentials": [("owner_admin", "false")],
    "ssh_credentials": [("owner_admin", "false")],
}


def plain_resource(res):
    return resource(KIND[res], KIND[res] + "_1", attributes=ORDINARY.get(res, []))


def account_rbac_cases():
    out = []
    actors = [(name, member(name), member_grants(r)) for name, r in MEMBERS.items()]
    actors += [("bot", BOT, BOT_GRANTS), ("system", SYSTEM, ALL)]
    # The matrix: every role value against every resource and verb.
    for name, who, grants in actors:
        for res, verbs in VERBS.items():
            for verb in verbs:
                action = f"iam.{res}.{verb}"
                want = "allow" if (res, verb) in grants else "deny"
                out.append(case(f"{name}: {action}", request(who, action,
                                plain_resource(res)), want))
        for action in ("computers.view", "reports.view", "iamx.users.get", "iam", "agent"):
            out.append(case(f"{name}: {action} is not account-rbac's",
                            request(who, action, resource("computer", "c-1", "tnt_a",
                                                          permission=catalog_index(action))),
                            "not_applicable"))
        # Unknown iam resources, and iam actions that are not resource.verb: only "all
        # actions" principals pass.
        unknown = "allow" if name in ("administrator", "system") else "deny"
        out.append(case(f"{name}: unknown iam.widgets.list",
                        request(who, "iam.widgets.list", resource("widget", "w1")), unknown))
        for malformed in ("iam.users.list.all", "iam.users.", "iam..list"):
            out.append(case(f"{name}: {malformed} is not resource.verb",
                            request(who, malformed, resource("user", "usr_x")), unknown))

    def rq(who, action, res, want, name):
        out.append(case(name, request(who, action, res), want))

    # Personal authtoken: "read-only ... can still see their personal authtoken"; api.md:
    # rotate "open to its owner whatever its developer role, and to administrators".
    ro = member("developer read_only")
    rw = member("developer read_write")
    admin = member("administrator")
    own = resource("credential", "cr_p1", owner=ro["id"], attributes=[("personal", "true")])
    theirs = resource("credential", "cr_p2", owner="usr_erin",
                      attributes=[("personal", "true")])
    mine_not_personal = resource("credential", "cr_3", owner=ro["id"],
                                 attributes=[("personal", "false")])
    for verb in ("get", "list", "rotate"):
        rq(ro, f"iam.credentials.{verb}", own, "allow",
           f"developer read_only: {verb} own personal authtoken")
    rq(ro, "iam.credentials.update", own, "deny",
       "developer read_only: update own personal authtoken")
    rq(ro, "iam.credentials.rotate", mine_not_personal, "deny",
       "developer read_only: rotate own non-personal authtoken")
    for name in ("team manager", "billing access", "team invite"):
        rq(member(name), "iam.credentials.rotate",
           resource("credential", "cr_p", owner=member(name)["id"],
                    attributes=[("personal", "true")]),
           "allow", f"{name}: rotate own personal authtoken")
    rq(ro, "iam.credentials.rotate", theirs, "deny",
       "developer read_only: rotate another member's personal authtoken")
    rq(rw, "iam.credentials.rotate", theirs, "deny",
       "developer read_write: rotate another member's personal authtoken")
    rq(rw, "iam.credentials.get", theirs, "allow",
       "developer read_write: get another member's personal authtoken")
    rq(BOT, "iam.credentials.rotate", theirs, "deny", "bot: rotate a member's personal authtoken")
    rq(admin, "iam.credentials.rotate", theirs, "allow",
       "administrator: rotate another member's personal authtoken")

    # Dashboard IP restrictions and the policies they use: administrators only (to change).
    dash = [
        ("ip_restrictions", resource("ip_restriction", "ipx_d", attributes=[("type", "dashboard")])),
        ("ip_policies", resource("ip_policy", "ipp_d", attributes=[("used_by_dashboard", "true")])),
        ("ip_policy_rules", resource("ip_policy_rule", "ipr_d",
                                     attributes=[("used_by_dashboard", "true")])),
    ]
    for res, obj in dash:
        for verb in ("create", "update", "delete"):
            rq(rw, f"iam.{res}.{verb}", obj, "deny", f"developer read_write: {verb} dashboard {res}")
            rq(BOT, f"iam.{res}.{verb}", obj, "deny", f"bot: {verb} dashboard {res}")
            rq(admin, f"iam.{res}.{verb}", obj, "allow", f"administrator: {verb} dashboard {res}")
        rq(ro, f"iam.{res}.get", obj, "allow", f"developer read_only: get dashboard {res}")
        rq(rw, f"iam.{res}.list", obj, "allow", f"developer read_write: list dashboard {res}")
    for t in ("api", "agent", "endpoints"):
        rq(rw, "iam.ip_restrictions.update",
           resource("ip_restriction", "ipx_" + t, attributes=[("type", t)]), "allow",
           f"developer read_write: update {t} ip_restriction")
    rq(rw, "iam.ip_policies.update",
       resource("ip_policy", "ipp_x", attributes=[("used_by_dashboard", "false")]), "allow",
       "developer read_write: update ip_policy not used by dashboard")

    # Team manager: "cannot modify or remove Administrators"; only administrators grant it.
    mgr = member("team manager")
    inv = member("team invite")
    admin_target = resource("user", "usr_boss", attributes=[("target_admin", "true")])
    for verb in ("update", "update_roles", "disable", "enable", "delete"):
        rq(mgr, f"iam.users.{verb}", admin_target, "deny", f"team manager: {verb} an administrator")
        rq(admin, f"iam.users.{verb}", admin_target, "allow",
           f"administrator: {verb} another administrator")
        rq(mgr, f"iam.users.{verb}", resource("user", "usr_x", attributes=ORDINARY["users"]),
           "allow", f"team manager: {verb} a non-administrator")
    rq(mgr, "iam.users.get", admin_target, "allow", "team manager: get an administrator")
    grants_admin = [("grants_admin", "true")]
    for action, kind in (("iam.users.update_roles", "user"), ("iam.users.create", "user"),
                         ("iam.invitations.create", "invitation")):
        rq(mgr, action, resource(kind, "x1", attributes=grants_admin), "deny",
           f"team manager: {action} granting administrator")
        rq(inv, action, resource(kind, "x1", attributes=grants_admin), "deny",
           f"team invite: {action} granting administrator")
        rq(admin, action, resource(kind, "x1", attributes=grants_admin), "allow",
           f"administrator: {action} granting administrator")
    higher = [("exceeds_own_roles", "true")]
    rq(inv, "iam.invitations.create", resource("invitation", "inv_1", attributes=higher),
       "deny", "team invite: invite with roles above its own")
    rq(inv, "iam.invitations.create",
       resource("invitation", "inv_1", attributes=ORDINARY["invitations"]),
       "allow", "team invite: invite with roles no higher than its own")
    rq(mgr, "iam.invitations.create",
       resource("invitation", "inv_1", attributes=higher + [("grants_admin", "false")]),
       "allow", "team manager: invite with any non-administrator roles")
    # Each of the two rules on its own, the other stated harmless: both must hold.
    rq(inv, "iam.invitations.create",
       resource("invitation", "inv_1", attributes=grants_admin + [("exceeds_own_roles", "false")]),
       "deny", "team invite: invite an administrator, roles otherwise within its own")
    rq(inv, "iam.invitations.create",
       resource("invitation", "inv_1", attributes=higher + [("grants_admin", "false")]),
       "deny", "team invite: invite with roles above its own, no administrator")
    # Granting administrator is about roles: verbs that grant none are not held to it.
    for verb in ("list", "get", "update", "disable"):
        rq(mgr, f"iam.users.{verb}",
           resource("user", "usr_x", attributes=grants_admin + [("target_admin", "false")]),
           "allow", f"team manager: {verb} a non-administrator (grants_admin is about roles)")

    # A restriction the host did not state is read the restrictive way: the policy fails
    # closed when an attribute is missing, and only administrators are unaffected.
    for who, action, kind, why in (
        (mgr, "iam.users.update_roles", "user", "target_admin and grants_admin"),
        (mgr, "iam.users.delete", "user", "target_admin"),
        (mgr, "iam.users.create", "user", "grants_admin"),
        (inv, "iam.invitations.create", "invitation", "grants_admin and exceeds_own_roles"),
        (rw, "iam.ip_restrictions.update", "ip_restriction", "type"),
        (rw, "iam.ip_policies.delete", "ip_policy", "used_by_dashboard"),
        (rw, "iam.ip_policy_rules.create", "ip_policy_rule", "used_by_dashboard"),
    ):
        rq(who, action, resource(kind, "x_unknown"), "deny",
           f"{action} without {why} stated: fail closed")
        rq(admin, action, resource(kind, "x_unknown"), "allow",
           f"administrator: {action} without {why} stated")

    # api.md: naming another user as a credential's owner is for administrators; naming a
    # bot user is open to read/write developers.
    for res, kind in (("api_keys", "api_key"), ("credentials", "credential"),
                      ("ssh_credentials", "ssh_credential")):
        rq(rw, f"iam.{res}.create", resource(kind, "new", owner="usr_erin"), "deny",
           f"developer read_write: create {res} owned by another user")
        rq(rw, f"iam.{res}.create", resource(kind, "new", owner=rw["id"]), "allow",
           f"developer read_write: create {res} owned by itself")
        rq(rw, f"iam.{res}.create", resource(kind, "new", owner="bot_ci"), "allow",
           f"developer read_write: create {res} owned by a bot user")
        rq(admin, f"iam.{res}.create", resource(kind, "new", owner="usr_erin"), "allow",
           f"administrator: create {res} owned by another user")
        rq(BOT, f"iam.{res}.create", resource(kind, "new", owner="bot_other"), "allow",
           f"bot: create {res} owned by another bot user")
        rq(BOT, f"iam.{res}.create", resource(kind, "new", owner="usr_erin"), "deny",
           f"bot: create {res} owned by a user")

    # API key scopes: "the key's rights are its owner's rights intersected with its scopes".
    def keyed(name, scopes):
        return member(name, credential("ApiKey", "ak_1", scopes=scopes))
    rw_bots = keyed("developer read_write", ["iam.bot_users.*"])
    rq(rw_bots, "iam.bot_users.create", plain_resource("bot_users"), "allow",
       "developer read_write, key scoped to iam.bot_users.*: create bot_users")
    rq(rw_bots, "iam.api_keys.create", plain_resource("api_keys"), "deny",
       "developer read_write, key scoped to iam.bot_users.*: create api_keys")
    admin_get = keyed("administrator", ["iam.users.get", "iam.users.list"])
    rq(admin_get, "iam.users.get", plain_resource("users"), "allow",
       "administrator, key scoped to iam.users.get: get users")
    rq(admin_get, "iam.users.delete", plain_resource("users"), "deny",
       "administrator, key scoped to iam.users.get: delete users")
    rq(keyed("administrator", ["*"]), "iam.account.update", plain_resource("account"), "allow",
       "administrator, key scoped to *: update account")
    rq(keyed("administrator", []), "iam.account.update", plain_resource("account"), "allow",
       "administrator, key without scopes: update account")
    # Only a key with scopes is held to a ceiling: a session or an unrestricted key
    # creates keys of any scope its owner's roles allow.
    stated = resource("api_key", "new", owner=member("developer read_write")["id"],
                      attributes=[("owner_admin", "false"), ("scopes", "iam.*")])
    for cred, how in ((credential("Session", "ses_1"), "a session"),
                      (credential("ApiKey", "ak_1"), "an unrestricted key")):
        for verb in ("create", "update"):
            rq(member("developer read_write", cred), f"iam.api_keys.{verb}", stated, "allow",
               f"developer read_write, {how}: {verb} api_keys scoped to iam.*")
    rq(keyed("developer read_only", ["iam.*"]), "iam.api_keys.create", plain_resource("api_keys"),
       "deny", "developer read_only, key scoped to iam.*: create api_keys (scopes never widen)")
    rq(keyed("administrator", ["iam.users.get"]), "computers.view",
       resource("computer", "c-1", "tnt_a", permission=catalog_index("computers.view")),
       "not_applicable",
       "administrator, scoped key: computers.view is not account-rbac's")
    bot_key = principal("Bot", "bot_ci", None, cred=credential("ApiKey", "ak_b", scopes=["iam.ip_policies.*"]))
    rq(bot_key, "iam.ip_policies.update", plain_resource("ip_policies"), "allow",
       "bot, key scoped to iam.ip_policies.*: update ip_policies")
    rq(bot_key, "iam.ip_policy_rules.update", plain_resource("ip_policy_rules"), "deny",
       "bot, key scoped to iam.ip_policies.*: update ip_policy_rules")

    # Issue 11, from seed 002 ("They cannot modify or remove Administrators") applied to
    # what administrators hold: a credential owned by an administrator is changed, deleted
    # or rotated only by its owner or an administrator. Reading it stays open.
    for res, kind, verbs in (("api_keys", "api_key", ["update", "delete"]),
                             ("credentials", "credential", ["update", "delete", "rotate"]),
                             ("ssh_credentials", "ssh_credential", ["update", "delete"])):
        bosses = resource(kind, kind + "_boss", owner="usr_boss",
                          attributes=[("owner_admin", "true")])
        mine = resource(kind, kind + "_mine", owner=rw["id"])
        for verb in verbs:
            action = f"iam.{res}.{verb}"
            rq(rw, action, bosses, "deny", f"developer read_write: {verb} an administrator's {kind}")
            rq(BOT, action, bosses, "deny", f"bot: {verb} an administrator's {kind}")
            rq(admin, action, bosses, "allow", f"administrator: {verb} another administrator's {kind}")
            rq(rw, action, resource(kind, kind + "_x", owner="usr_erin"), "deny",
               f"developer read_write: {verb} a {kind} without owner_admin stated: fail closed")
            rq(rw, action, mine, "allow", f"developer read_write: {verb} its own {kind}")
            rq(rw, action, resource(kind, kind + "_bot", owner="bot_ci",
                                    attributes=[("owner_admin", "false")]),
               "allow", f"developer read_write: {verb} a bot user's {kind}")
        rq(rw, f"iam.{res}.get", bosses, "allow", f"developer read_write: get an administrator's {kind}")

    # Issue 11: a credential never grants more than the credential that made it. A key
    # created or updated by an API-key caller has scopes within the caller's (whatever the
    # caller's roles); an unrestricted key is the scope `*`; the host states the resulting
    # scopes in `scopes` and an unstated one fails closed.
    def scoped_key(name, scopes):
        return member(name, credential("ApiKey", "ak_caller", scopes=scopes))

    def new_key(scopes):
        return resource("api_key", "new", owner="usr_erin",
                        attributes=[("owner_admin", "false"), ("scopes", " ".join(scopes))])
    for verb in ("create", "update"):
        action = f"iam.api_keys.{verb}"
        only = scoped_key("administrator", [action])
        rq(only, action, new_key([]), "deny",
           f"administrator, key scoped to {action}: {verb} an unrestricted key")
        rq(only, action, new_key(["*"]), "deny",
           f"administrator, key scoped to {action}: {verb} a key scoped to *")
        rq(only, action, new_key([action]), "allow",
           f"administrator, key scoped to {action}: {verb} a key with the same scope")
        rq(only, action, new_key([action, "iam.users.get"]), "deny",
           f"administrator, key scoped to {action}: {verb} a key with one scope more")
        rq(only, action, resource("api_key", "new", owner="usr_erin"), "deny",
           f"administrator, key scoped to {action}: {verb} a key whose scopes are not stated")
        keys = scoped_key("administrator", ["iam.api_keys.*"])
        rq(keys, action, new_key(["iam.api_keys.get", "iam.api_keys.list"]), "allow",
           f"administrator, key scoped to iam.api_keys.*: {verb} a key with narrower scopes")
        rq(keys, action, new_key(["iam.api_keys.*"]), "allow",
           f"administrator, key scoped to iam.api_keys.*: {verb} a key with the same scopes")
        rq(keys, action, new_key(["iam.*"]), "deny",
           f"administrator, key scoped to iam.api_keys.*: {verb} a key scoped to iam.*")
        wide = scoped_key("developer read_write", ["iam.*"])
        rq(dict(wide, id="usr_developer_read_write"), action,
           resource("api_key", "new", owner="usr_developer_read_write",
                    attributes=[("scopes", "iam.bot_users.* iam.api_keys.get")]),
           "allow", f"developer read_write, key scoped to iam.*: {verb} its key within it")
        rq(scoped_key("administrator", ["*"]), action, new_key([]), "allow",
           f"administrator, key scoped to *: {verb} an unrestricted key")
        rq(member("administrator", credential("ApiKey", "ak_caller")), action, new_key([]),
           "allow", f"administrator, key without scopes: {verb} an unrestricted key")
        rq(member("administrator"), action, new_key([]), "allow",
           f"administrator, session: {verb} an unrestricted key")
        bot_keys = principal("Bot", "bot_ci", None,
                             cred=credential("ApiKey", "ak_b", scopes=["iam.api_keys.*",
                                                                        "iam.bot_users.*"]))
        rq(bot_keys, action, resource("api_key", "new", owner="bot_ci",
                                      attributes=[("scopes", "iam.bot_users.get")]),
           "allow", f"bot, key scoped to iam.api_keys.* and iam.bot_users.*: {verb} a narrower key")
        rq(bot_keys, action, resource("api_key", "new", owner="bot_ci",
                                      attributes=[("scopes", "")]),
           "deny", f"bot, scoped key: {verb} an unrestricted key")

    # agent.bind: the credential's ACL decides (ngrok bind rules); any developer role may
    # run an agent ("can still ... use the ngrok agent to create endpoints").
    def bind(who, target, want, name):
        rq(who, "agent.bind", resource("host", target), want, name)

    def agent(acl, kind="Authtoken", base=None):
        base = base or member("developer read_only")
        return dict(base, credential=credential(kind, "cr_1" if kind == "Authtoken" else "sshcr_1",
                                                personal=True, acl=acl))
    bind(agent([]), "anything.example.org", "allow", "bind: empty ACL allows anything")
    bind(agent(["*"]), "x.example.org", "allow", "bind: * allows anything")
    bind(agent(["bind:*"]), "db.internal:5432", "allow", "bind: bind:* allows anything")
    wild = agent(["bind:*.example.com"])
    bind(wild, "api.example.com", "allow", "bind: *.example.com allows api.example.com")
    bind(wild, "API.Example.COM", "allow", "bind: host names are case-insensitive")
    bind(wild, "a.b.example.com", "allow", "bind: *.example.com allows a.b.example.com")
    bind(wild, "example.com", "deny", "bind: *.example.com does not allow example.com")
    bind(wild, "example.com.evil.org", "deny", "bind: *.example.com does not allow a lookalike")
    bind(wild, "api.example.com:443", "deny", "bind: a domain rule does not grant an address")
    exact = agent(["bind:api.example.com"])
    bind(exact, "api.example.com", "allow", "bind: exact host")
    bind(exact, "www.example.com", "deny", "bind: another host")
    tcp = agent(["bind:1.tcp.example.com:20000"])
    bind(tcp, "1.tcp.example.com:20000", "allow", "bind: exact TCP address")
    bind(tcp, "1.tcp.example.com:20001", "deny", "bind: another port")
    bind(tcp, "1.tcp.example.com", "deny", "bind: an address rule does not grant the host")
    label = agent(["bind:env=prod"])
    bind(label, "env=prod", "allow", "bind: exact label")
    bind(label, "env=dev", "deny", "bind: another label value")
    bind(label, "Env=prod", "deny", "bind: labels are case-sensitive")
    bind(agent(["bind:env=*"]), "env=dev", "allow", "bind: label with any value")
    bind(agent(["bind:a.example.com", "bind:app=web"]), "app=web", "allow",
         "bind: any one rule suffices")
    bind(agent(["bind:*.example.com"]), "bad host", "deny", "bind: malformed target")
    bind(agent(["bind:*.example.com"], "SshKey"), "ssh.example.com", "allow",
         "bind: SSH key within its ACL")
    bind(agent(["bind:*.example.com"], "SshKey"), "ssh.example.net", "deny",
         "bind: SSH key outside its ACL")
    bind(agent(["bind:*.example.com"], base=BOT), "ci.example.com", "allow",
         "bind: bot authtoken within its ACL")
    bind(agent(["bind:*.example.com"], base=member("administrator")), "x.example.net", "deny",
         "bind: an administrator's authtoken still obeys its ACL")
    bind(member("developer read_write", credential("ApiKey", "ak_1")), "api.example.com",
         "deny", "bind: an API key does not start agents")
    bind(member("developer read_write", credential("Session", "ses_1")), "api.example.com",
         "deny", "bind: a dashboard session does not start agents")
    bind(member("developer read_write"), "api.example.com", "deny", "bind: no credential")

    # Every request acts inside the account of its credential (api.md).
    foreign = resource("api_key", "ak_9", account=OTHER_ACCOUNT)
    rq(admin, "iam.api_keys.get", foreign, "deny", "administrator: another account's api_key")
    rq(BOT, "iam.api_keys.get", foreign, "deny", "bot: another account's api_key")
    rq(SYSTEM, "iam.api_keys.get", foreign, "allow", "system: any account's api_key")
    rq(agent([]), "agent.bind", resource("host", "x.example.com", account=OTHER_ACCOUNT),
       "deny", "bind: in another account")
    rq(principal("User", "usr_nobody", None), "iam.users.list", plain_resource("users"), "deny",
       "user without account roles: list users")
    rq(admin, "iam.users", plain_resource("users"), "allow", "administrator: malformed iam action")
    rq(rw, "iam.users", plain_resource("users"), "deny", "developer read_write: malformed iam action")
    return out


# ---------------------------------------------------------------- tenant roles (seed 003)

CATALOG = [  # api.md, in catalog order (index = position)
    "computers.view", "computers.add", "computers.edit", "computers.delete",
    "computers.run_maintenance", "computers.remote_control",
    "deployments.view", "deployments.create", "deployments.edit", "deployments.delete",
    "deployments.approve",
    "software.view", "software.add", "software.edit", "software.delete",
    "software.manage_versions", "software.request_install",
    "users.view", "users.add", "users.edit", "users.delete", "users.manage_roles",
    "system.view_settings", "system.edit_settings", "system.manage_integrations",
    "system.view_logs", "system.manage_licenses",
    "reports.view",
]
ADDED = len(CATALOG)  # an operator-added catalog entry, e.g. "backups.restore"
# api.md's built-in role table, verbatim.
BUILTIN = {
    "Global Administrator": set(CATALOG) | {ADDED},  # every catalog permission
    "Tenant Administrator": {p for p in CATALOG if not p.startswith("system.")},
    "Technician": {"computers.view", "computers.add", "computers.edit",
                   "computers.run_maintenance", "computers.remote_control",
                   "deployments.view", "deployments.create", "deployments.edit",
                   "software.view", "reports.view", "system.view_logs"},
    "Read-Only": {p for p in CATALOG if p.endswith(".view")}
    | {"system.view_settings", "system.view_logs"},
    "Self-Service": {"computers.view", "software.request_install", "reports.view"},
}
# The scope column: where each built-in may be assigned (others grant nothing).
SCOPE = {"Global Administrator": "all", "Tenant Administrator": "tenant",
         "Self-Service": "tenant", "Technician": "either", "Read-Only": "either"}
CUSTOM = {  # custom roles: a name and a permission set from the catalog
    "Helpdesk": {"computers.view", "computers.remote_control", "reports.view"},
    "Auditor": {"system.view_logs", "reports.view", ADDED},
}


def index(p):
    return p if isinstance(p, int) else CATALOG.index(p)


def bits(perms):
    words = [0] * ((max(index(p) for p in perms) // 64) + 1)
    for p in perms:
        words[index(p) // 64] |= 1 << (index(p) % 64)
    return words


def assignment(role, tenant):
    if role in BUILTIN:
        return {"role": role, "builtin": True, "tenant": tenant, "permissions": []}
    return {"role": role, "builtin": False, "tenant": tenant, "permissions": bits(CUSTOM[role])}


def expected(assignments, tenant, permission):
    """allow iff an assignment for the resource's tenant (or all tenants) grants it."""
    if permission is None:
        return "deny"  # "action is not in the permission catalog"
    for a in assignments:
        if a["tenant"] is not None and a["tenant"] != tenant:
            continue
        role = a["role"]
        if a["builtin"]:
            scope = SCOPE.get(role)
            if scope == "all" and a["tenant"] is not None:
                continue
            if scope == "tenant" and a["tenant"] is None:
                continue
            perms = {index(p) for p in BUILTIN.get(role, set())}
        else:
            perms = {index(p) for p in CUSTOM.get(role, set())}
        if permission in perms:
            return "allow"
    return "deny"


def tenant_roles_cases():
    out = []
    holders = [  # (name, kind, assignments): every built-in, custom roles, mixes
        ("Global Administrator (all tenants)", "User", [("Global Administrator", None)]),
        ("Tenant Administrator of tnt_a", "User", [("Tenant Administrator", "tnt_a")]),
        ("Technician of tnt_a", "User", [("Technician", "tnt_a")]),
        ("Technician (all tenants)", "User", [("Technician", None)]),
        ("Read-Only of tnt_a", "User", [("Read-Only", "tnt_a")]),
        ("Read-Only (all tenants)", "User", [("Read-Only", None)]),
        ("Self-Service of tnt_a", "User", [("Self-Service", "tnt_a")]),
        ("custom Helpdesk of tnt_a", "User", [("Helpdesk", "tnt_a")]),
        ("custom Auditor (all tenants)", "User", [("Auditor", None)]),
        ("Self-Service of tnt_a + Technician of tnt_b", "User",
         [("Self-Service", "tnt_a"), ("Technician", "tnt_b")]),
        ("Read-Only (all) + Helpdesk of tnt_a", "User", [("Read-Only", None), ("Helpdesk", "tnt_a")]),
        ("integration bot, Technician of tnt_a", "Bot", [("Technician", "tnt_a")]),
        ("no assignments", "User", []),
        # Outside the scope column (the API refuses to create these): grant nothing.
        ("Global Administrator scoped to tnt_a", "User", [("Global Administrator", "tnt_a")]),
        ("Tenant Administrator for all tenants", "User", [("Tenant Administrator", None)]),
    ]
    families = ["computers", "deployments", "software", "users", "system", "reports"]
    sample = []
    for f in families:  # per family: its view permission and its first non-view one
        fam = [p for p in CATALOG if p.startswith(f + ".")]
        sample += [p for p in fam if "view" in p][:1] + [p for p in fam if "view" not in p][:1]
    for n, (name, kind, held) in enumerate(holders):
        pid = ("bot_" if kind == "Bot" else "usr_") + f"h{n}"
        assigns = [assignment(r, t) for r, t in held]
        who = principal(kind, pid, roles() if kind == "User" else None, assigns)
        # The role's own tenant against the whole catalog, an operator-added entry and an
        # action outside the catalog; another tenant and no tenant against each family.
        targets = [("tnt_a", CATALOG + [ADDED, None]), ("tnt_b", sample), (None, sample)]
        for tenant, perms in targets:
            for p in perms:
                pidx = None if p is None else index(p)
                action = {None: "computers.teleport", ADDED: "backups.restore"}.get(p, p)
                where = tenant or "no tenant"
                res = resource("computer", "c-1", tenant, permission=pidx)
                out.append(case(f"{name}: {action} in {where}", request(who, action, res),
                                expected(assigns, tenant, pidx)))
        for action in ("iam.users.list", "iam.tenants.create", "agent.bind"):
            out.append(case(f"{name}: {action} is not tenant-roles'",
                            request(who, action, resource("user", "usr_x")), "not_applicable"))

    ga = [assignment("Global Administrator", None)]

    def keyed(scopes):
        return principal("User", "usr_key", roles(), ga, credential("ApiKey", "ak_1", scopes=scopes))
    view, delete = index("computers.view"), index("computers.delete")
    on_a = lambda p: resource("computer", "c-1", "tnt_a", permission=p)  # noqa: E731
    out.append(case("GA, key scoped to computers.view: computers.view",
                    request(keyed(["computers.view"]), "computers.view", on_a(view)), "allow"))
    out.append(case("GA, key scoped to computers.view: computers.delete",
                    request(keyed(["computers.view"]), "computers.delete", on_a(delete)), "deny"))
    out.append(case("GA, key scoped to computers.*: computers.delete",
                    request(keyed(["computers.*"]), "computers.delete", on_a(delete)), "allow"))
    out.append(case("GA, key scoped to iam.*: computers.view",
                    request(keyed(["iam.*"]), "computers.view", on_a(view)), "deny"))
    out.append(case("GA, key scoped to computers.view: iam.users.list",
                    request(keyed(["computers.view"]), "iam.users.list", resource("user", "u")),
                    "not_applicable"))
    gadmin = principal("User", "usr_ga", roles(), ga)
    out.append(case("GA: a computer of another account",
                    request(gadmin, "computers.view",
                            resource("computer", "c-9", "tnt_a", permission=view,
                                     account=OTHER_ACCOUNT)), "deny"))
    out.append(case("system principal: computers.view (it holds no tenant roles)",
                    request(SYSTEM, "computers.view", on_a(view)), "deny"))
    impostor = principal("User", "usr_imp", roles(), [
        {"role": "Technician", "builtin": False, "tenant": "tnt_a", "permissions": []}])
    out.append(case("custom role named Technician without permissions: computers.view",
                    request(impostor, "computers.view", on_a(view)), "deny"))
    ignored = principal("User", "usr_ign", roles(), [
        {"role": "Self-Service", "builtin": True, "tenant": "tnt_a",
         "permissions": bits(CATALOG)}])
    out.append(case("built-in Self-Service ignores permission bits: computers.delete",
                    request(ignored, "computers.delete", on_a(delete)), "deny"))
    return out


# ---------------------------------------------------------------- business hours example

def business_hours_cases():
    tech = principal("User", "usr_tech", roles(), [assignment("Technician", "tnt_a")])
    remote = resource("computer", "c-1", "tnt_a", permission=index("computers.remote_control"))
    view = resource("computer", "c-1", "tnt_a", permission=index("computers.view"))
    hour = 3_600_000
    monday = T0 - 12 * hour  # 2026-11-23 00:00 UTC
    rows = [
        ("Monday 12:00: abstain", "computers.remote_control", remote, monday + 12 * hour,
         "not_applicable"),
        ("Monday 08:00: abstain", "computers.remote_control", remote, monday + 8 * hour,
         "not_applicable"),
        ("Monday 07:59: deny", "computers.remote_control", remote, monday + 8 * hour - 60_000,
         "deny"),
        ("Monday 18:00: deny", "computers.remote_control", remote, monday + 18 * hour, "deny"),
        ("Friday 17:59: abstain", "computers.remote_control", remote,
         monday + 4 * 24 * hour + 18 * hour - 60_000, "not_applicable"),
        ("Saturday 12:00: deny", "computers.remote_control", remote,
         monday + 5 * 24 * hour + 12 * hour, "deny"),
        ("Sunday 12:00: other actions are not judged", "computers.view", view,
         monday + 6 * 24 * hour + 12 * hour, "not_applicable"),
    ]
    return [case(n, request(tech, a, r, t), e) for n, a, r, t, e in rows]


# ---------------------------------------------------------------- reasons

# A part of the reason some cases must give (the policy's words, where an answer's
# explanation is part of what it promises): mutation testing showed that the outcome
# alone leaves a wrong explanation unnoticed.
REASONS = {
    "developer read_write: iam.account.update": "only administrators may update account settings",
    "developer read_write: iam.events.list": "only administrators may list events",
    "team manager: iam.identity_providers.create":
        "only administrators may create account settings",
    "developer read_write: iam.event_destinations.list":
        "only administrators may list event destinations",
    "developer read_write: iam.policies.list": "only administrators may list the live policy set",
    "developer read_write: iam.api_keys.list": "developer read_write may list api_keys",
    "developer read_only: iam.api_keys.list": "developer read_only may list api_keys",
    "bot: iam.api_keys.list": "bot user (a read/write developer) may list api_keys",
    "team invite: iam.tenants.create":
        "only administrators and team managers may create tenants, not team invite",
    "team read_only: iam.tenants.create":
        "only administrators and team managers may create tenants, not team read_only",
    "Technician of tnt_a: computers.view in tnt_a":
        "role Technician in tenant tnt_a grants computers.view",
    "Global Administrator (all tenants): computers.view in tnt_a":
        "role Global Administrator for all tenants grants computers.view",
    "Read-Only of tnt_a: computers.delete in tnt_a":
        "role Read-Only in tenant tnt_a does not grant computers.delete",
    "custom Helpdesk of tnt_a: computers.delete in tnt_a":
        "role Helpdesk in tenant tnt_a does not grant computers.delete",
    "Global Administrator scoped to tnt_a: computers.view in tnt_a":
        "built-in role Global Administrator cannot be assigned in tenant tnt_a",
    "Tenant Administrator for all tenants: computers.view in tnt_a":
        "built-in role Tenant Administrator cannot be assigned for all tenants",
}


REASONED = set()


def with_reasons(cases):
    for c in cases:
        if c["name"] in REASONS:
            c["reason"] = REASONS[c["name"]]
            REASONED.add(c["name"])
    return cases


# ---------------------------------------------------------------- output
#
# The cases are made above as whole requests, then written in the API-shaped format of
# `latchkey policy test` (src/policy/cases.rs): fixtures declared once (tenants, added
# catalog entries, custom roles, principals), cases naming them. Each written case is
# built back into its request here, by the rules the Rust reader follows, and must give
# the request it came from: the conversion loses nothing.

BUILTIN_CATALOG_LEN = 28
CREDENTIAL_KINDS = {"Authtoken": ("authtoken", "cr"), "ApiKey": ("api_key", "ak"),
                    "SshKey": ("ssh_key", "sshcr"), "Session": ("session", "ses")}
PRINCIPAL_KINDS = {"User": ("user", "usr_"), "Bot": ("bot", "bot_"), "System": ("system", None)}
ROLE_VALUES = {"ReadWrite": "read_write", "ReadOnly": "read_only", "Manager": "manager",
               "Invite": "invite", "Access": "access", "None": "none"}
LEAST = {"developer": "ReadOnly", "team": "ReadOnly", "billing": "None", "admin": False}


def rfc3339(ms):
    import datetime
    at = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return at.strftime("%Y-%m-%dT%H:%M:%S") + ("" if ms % 1000 == 0 else f".{ms % 1000:03d}") + "Z"


def tenant_name(tenant):
    assert tenant.startswith("tnt_"), tenant
    return tenant[len("tnt_"):]


def fixture(p, name):
    """The fixture describing ABI principal `p`, named `name`."""
    kind, prefix = PRINCIPAL_KINDS[p["kind"]]
    spec = {}
    if kind != "user":
        spec["kind"] = kind
    default_id = "system" if prefix is None else prefix + name
    if p["id"] != default_id:
        spec["id"] = p["id"]
    if p["roles"] is not None:
        changed = {k: (ROLE_VALUES[v] if isinstance(v, str) else v)
                   for k, v in p["roles"].items() if v != LEAST[k]}
        if changed:
            spec["roles"] = changed
    elif kind == "user":
        spec["member"] = False
    if p["assignments"]:
        spec["assignments"] = [
            {"role": a["role"], **({"tenant": tenant_name(a["tenant"])} if a["tenant"] else {})}
            for a in p["assignments"]]
    if p["mfa"] != {"enrolled": False, "verified": False}:
        spec["mfa"] = p["mfa"]
    if p["credential"] is not None:
        c = p["credential"]
        ckind, cprefix = CREDENTIAL_KINDS[c["kind"]]
        cred = {"kind": ckind}
        if c["id"] != f"{cprefix}_{name}":
            cred["id"] = c["id"]
        for field in ("personal", "acl", "scopes"):
            if c[field]:
                cred[field] = c[field]
        spec["credential"] = cred
    assert p["source_ip"] is None, p
    return spec


def build(f, case):
    """The ABI request the reader builds from written case `case` of file `f`."""
    catalog = CATALOG + f.get("catalog", [])
    name = case["principal"]
    spec = f["principals"][name]
    kind = spec.get("kind", "user")
    prefix = {"user": "usr_", "bot": "bot_"}.get(kind)
    roles = None
    if kind == "user" and spec.get("member", True):
        roles = dict(LEAST)
        back = {v: k for k, v in ROLE_VALUES.items()}
        for k, v in spec.get("roles", {}).items():
            roles[k] = back[v] if isinstance(v, str) else v
    tenant = lambda t: None if t is None else ("tnt_" + t if t in f.get("tenants", []) else t)
    assignments = []
    for a in spec.get("assignments", []):
        custom = f.get("roles", {}).get(a["role"])
        if custom is None:
            assignments.append({"role": a["role"], "builtin": True,
                                "tenant": tenant(a.get("tenant")), "permissions": []})
        else:
            words = [0] * ((len(catalog) + 63) // 64)
            for i, entry in enumerate(catalog):
                if entry in custom:
                    words[i // 64] |= 1 << (i % 64)
            assignments.append({"role": a["role"], "builtin": False,
                                "tenant": tenant(a.get("tenant")), "permissions": words})
    cred = None
    if "credential" in spec:
        c = spec["credential"]
        abi_kind = {v[0]: k for k, v in CREDENTIAL_KINDS.items()}[c["kind"]]
        cred = {"kind": abi_kind,
                "id": c.get("id", f"{CREDENTIAL_KINDS[abi_kind][1]}_{name}"),
                "personal": c.get("personal", False), "acl": c.get("acl", []),
                "scopes": c.get("scopes", [])}
    principal = {"kind": {"user": "User", "bot": "Bot", "system": "System"}[kind],
                 "id": spec.get("id", "system" if prefix is None else prefix + name),
                 "account": f["account"], "roles": roles, "assignments": assignments,
                 "mfa": spec.get("mfa", {"enrolled": False, "verified": False}),
                 "credential": cred, "source_ip": None}
    r = case["resource"]
    action = case["action"]
    permission = None
    if not (action.startswith("iam.") or action == "agent.bind") and action in catalog:
        permission = catalog.index(action)
    owner = r.get("owner_id")
    if owner in f["principals"]:
        o = f["principals"][owner]
        p = {"user": "usr_", "bot": "bot_"}.get(o.get("kind", "user"))
        owner = o.get("id", "system" if p is None else p + owner)
    ctx = dict(case.get("context", {}))
    time = ctx.pop("time", f["time"])
    import datetime
    ms = int(datetime.datetime.strptime(time.replace("Z", "+0000"),
             "%Y-%m-%dT%H:%M:%S%z" if "." not in time else "%Y-%m-%dT%H:%M:%S.%f%z")
             .timestamp() * 1000 + 0.5)
    return {"principal": principal, "action": action,
            "resource": {"kind": r["type"], "id": r.get("id", ""),
                         "account": r.get("account", f["account"]),
                         "tenant": tenant(r.get("tenant_id")), "owner": owner,
                         "permission": permission,
                         "attributes": [[k, v] for k, v in r.get("attributes", {}).items()]},
            "context": {"time_ms": ms, "values": [[k, v] for k, v in ctx.items()]}}


def render(cases, added=(), custom=None):
    names = [c["name"] for c in cases]
    dupes = {n for n in names if names.count(n) > 1}
    assert not dupes, f"duplicate case names: {sorted(dupes)}"
    f = {"account": ACCOUNT, "time": rfc3339(T0)}
    tenants = sorted({t for c in cases for t in
                      [c["request"]["resource"]["tenant"]] +
                      [a["tenant"] for a in c["request"]["principal"]["assignments"]]
                      if t is not None})
    if tenants:
        f["tenants"] = [tenant_name(t) for t in tenants]
    if added:
        f["catalog"] = list(added)
    used = {a["role"] for c in cases for a in c["request"]["principal"]["assignments"]
            if not a["builtin"] and a["role"] not in BUILTIN}
    if used:
        f["roles"] = {r: sorted(CATALOG[p] if isinstance(p, int) and p < len(CATALOG) else
                                (added[p - len(CATALOG)] if isinstance(p, int) else p)
                                for p in custom[r]) for r in sorted(used)}
    principals, names_of = {}, {}
    for c in cases:
        p = c["request"]["principal"]
        key = json.dumps(p, sort_keys=True)
        if key in names_of:
            continue
        assert p["account"] == ACCOUNT, p
        prefix = PRINCIPAL_KINDS[p["kind"]][1]
        base = p["id"][len(prefix):] if prefix and p["id"].startswith(prefix) else p["id"]
        name, n = base, 2
        while name in principals:
            name, n = f"{base}-{n}", n + 1
        principals[name] = fixture(p, name)
        names_of[key] = name
    f["principals"] = principals
    out = []
    for c in cases:
        req = c["request"]
        r = req["resource"]
        res = {"type": r["kind"]}
        if r["id"]:
            res["id"] = r["id"]
        if r["account"] != ACCOUNT:
            res["account"] = r["account"]
        if r["tenant"] is not None:
            res["tenant_id"] = tenant_name(r["tenant"]) if r["tenant"] in tenants else r["tenant"]
        if r["owner"] is not None:
            res["owner_id"] = r["owner"]
        if r["attributes"]:
            res["attributes"] = dict(r["attributes"])
            assert len(res["attributes"]) == len(r["attributes"]), r
        case_out = {"name": c["name"], "principal": names_of[json.dumps(req["principal"], sort_keys=True)],
                    "action": req["action"], "resource": res}
        ctx = {}
        if req["context"]["time_ms"] != T0:
            ctx["time"] = rfc3339(req["context"]["time_ms"])
        ctx.update(dict(req["context"]["values"]))
        if ctx:
            case_out["context"] = ctx
        case_out["expect"] = c["expect"]
        if "reason" in c:
            case_out["reason"] = c["reason"]
        out.append(case_out)
    # A request the host would never build (a custom role named like a built-in one, a
    # built-in assignment carrying bits) stays a whole request; only those may.
    whole = []
    for i, (c, written) in enumerate(zip(cases, out)):
        if build(f, written) != c["request"]:
            out[i] = {"name": c["name"], "request": c["request"], "expect": c["expect"],
                      **({"reason": c["reason"]} if "reason" in c else {})}
            whole.append(c["name"])
    assert len(whole) <= 3, f"cases that do not convert: {whole}"
    referenced = {c["principal"] for c in out if "principal" in c}
    principals = {n: p for n, p in principals.items() if n in referenced}
    f["principals"] = principals
    f["cases"] = out
    head = {k: v for k, v in f.items() if k not in ("principals", "cases")}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f'  "{k}": {json.dumps(v, ensure_ascii=False)},')
    lines.append('  "principals": {')
    lines.append(",\n".join(f'    "{n}": {json.dumps(s, ensure_ascii=False)}'
                            for n, s in principals.items()))
    lines.append("  },")
    lines.append('  "cases": [')
    lines.append(",\n".join("    " + json.dumps(c, ensure_ascii=False) for c in out))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


OUTPUTS = {
    "policies/account-rbac.cases.json": lambda: render(with_reasons(account_rbac_cases())),
    "policies/tenant-roles.cases.json":
        lambda: render(with_reasons(tenant_roles_cases()), ["backups.restore"], CUSTOM),
    "plugins/examples/business-hours/business-hours.cases.json":
        lambda: render(business_hours_cases()),
}


def main(argv):
    check = "--check" in argv
    stale = False
    for rel, make in OUTPUTS.items():
        path = os.path.join(ROOT, rel)
        text = make()
        if check:
            try:
                with open(path, encoding="utf-8") as f:
                    current = f.read()
            except FileNotFoundError:
                current = None
            if current != text:
                print(f"{rel} is stale: run python3 plugins/cases/generate.py", file=sys.stderr)
                stale = True
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"{rel}: {text.count(chr(10))} lines")
    unused = set(REASONS) - REASONED
    assert not unused, f"REASONS names no case: {sorted(unused)}"
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
