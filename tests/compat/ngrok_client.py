"""Drive latchkey with ngrok's official Python API client (PyPI `ngrok-api`), unmodified.

Usage: REQUESTS_CA_BUNDLE=DATA/tls/cert.pem python3 ngrok_client.py BASE_URL API_KEY
Prints one line per step and exits non-zero on the first failure.
"""

import sys

import ngrok

SSH_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmAQJl2CVY6yK1oCQv1kz5hY3qVyfE4ppmg3DCjmj0Q "
           "compat@ngrok")


def check(what, condition):
    if not condition:
        print(f"FAIL {what}")
        sys.exit(1)
    print(f"ok   {what}")


def main(base_url, api_key):
    client = ngrok.Client(api_key, base_url=base_url)

    bot = client.bot_users.create(name="compat-bot")
    check("bot_users.create", bot.id.startswith("bot_") and bot.name == "compat-bot" and bot.active)
    bot = client.bot_users.update(bot.id, name="compat-bot-2", active=False)
    check("bot_users.update", bot.name == "compat-bot-2" and not bot.active)
    check("bot_users.get", client.bot_users.get(bot.id).id == bot.id)
    check("bot_users.list", any(b.id == bot.id for b in client.bot_users.list()))

    cred = client.credentials.create(description="agent", acl=["bind:*.example.com"])
    check("credentials.create", cred.id.startswith("cr_") and cred.token.startswith("lk_at_")
          and cred.acl == ["bind:*.example.com"])
    cred = client.credentials.update(cred.id, metadata='{"k":1}', acl=["bind:a.example.com"])
    check("credentials.update", cred.metadata == '{"k":1}' and cred.acl == ["bind:a.example.com"])
    check("credentials.get token is null", client.credentials.get(cred.id).token is None)

    key = client.api_keys.create(description="compat", owner_id=bot.id)
    check("api_keys.create", key.id.startswith("ak_") and key.token.startswith("lk_ak_")
          and key.owner_id == bot.id)
    key = client.api_keys.update(key.id, description="compat-2")
    check("api_keys.update", key.description == "compat-2")

    ssh = client.ssh_credentials.create(public_key=SSH_KEY, acl=["bind:ssh.example.com"])
    check("ssh_credentials.create", ssh.id.startswith("sshcr_") and ssh.public_key == SSH_KEY)
    check("ssh_credentials.get", client.ssh_credentials.get(ssh.id).acl == ["bind:ssh.example.com"])

    policy = client.ip_policies.create(description="office")
    check("ip_policies.create", policy.id.startswith("ipp_"))
    rule = client.ip_policy_rules.create(cidr="10.0.0.0/8", ip_policy_id=policy.id,
                                         action="allow", description="lan")
    check("ip_policy_rules.create", rule.cidr == "10.0.0.0/8" and rule.ip_policy.id == policy.id
          and rule.action == "allow")
    rule = client.ip_policy_rules.update(rule.id, cidr="192.0.2.0/24")
    check("ip_policy_rules.update", rule.cidr == "192.0.2.0/24")
    restriction = client.ip_restrictions.create(type="agent", ip_policy_ids=[policy.id])
    check("ip_restrictions.create", restriction.id.startswith("ipx_")
          and restriction.type == "agent" and not restriction.enforced
          and restriction.ip_policies[0].id == policy.id)
    restriction = client.ip_restrictions.update(restriction.id, description="agents")
    check("ip_restrictions.update", restriction.description == "agents")

    # Pagination: the client follows next_page_uri itself.
    made = [client.bot_users.create(name=f"page-{i}").id for i in range(5)]
    seen = [b.id for b in client.bot_users.list(limit="2")]
    check("list pagination across pages", all(i in seen for i in made) and len(seen) == len(set(seen)))

    try:
        client.api_keys.get("ak_0352FHSFuCpzwuA2PPTNK4")
        check("a missing object raises", False)
    except ngrok.Error as err:
        check("a missing object raises ngrok.Error 404", err.http_status_code == 404)

    client.ip_restrictions.delete(restriction.id)
    client.ip_policy_rules.delete(rule.id)
    client.ip_policies.delete(policy.id)
    client.ssh_credentials.delete(ssh.id)
    client.api_keys.delete(key.id)
    client.credentials.delete(cred.id)
    client.bot_users.delete(bot.id)
    for i in made:
        client.bot_users.delete(i)
    try:
        client.bot_users.get(bot.id)
        check("deleted objects are gone", False)
    except ngrok.NotFoundError:
        check("deleted objects are gone", True)
    print("all ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
