"""The dovecot.conf of the test server (Dovecot 2.3, as in Debian 12), run as root.

DESIGN.md section 8: internal and login users are Dovecot's own, mail is owned by the
``dovecot`` user (so ``first_valid_uid`` is low), every directory on the way is 0755.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DovecotPorts:
    imap: int  # plain text, STARTTLS offered (RFC 3501 section 6.2.1)
    imaps: int  # implicit TLS (RFC 8314)
    pop3: int  # plain text, STLS offered (RFC 2595 section 4)
    pop3s: int
    lmtp: int  # for delivering test mail (RFC 2033)


CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = casemail-test-{instance}
log_path = {root}/dovecot.log
protocols = imap pop3 lmtp
listen = 127.0.0.1
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
first_valid_gid = 1
login_greeting = casemail test Dovecot ready.
log_timestamp = "%H:%M:%S.%{{usecs}} "

ssl = {ssl}
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
# Plain-text logins are allowed so that "security none" can be tested at all.
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
auth_cache_size = 0
# No growing delay after failed logins from 127.0.0.1 (the auth penalty): tests that try a
# wrong password must not slow down the tests after them.
# Hundreds of mailboxes watched at once (the scale-out test, the IDLE benchmark): each IMAP
# session is a process, and a TLS one a login process besides (it relays the encryption).
default_process_limit = 2500
default_client_limit = 5000
mail_max_userip_connections = 50
# Every IMAP process runs as one user, and the kernel gives a user 128 inotify instances
# (fs.inotify.max_user_instances): past that, Dovecot stops watching Maildirs and an IDLE
# session hears of new mail only at this check (default 30 s).
mailbox_idle_check_interval = 1 secs

service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

# One passwd-file per user: Dovecot re-reads a changed file at most once a second, so users
# added to a shared file would be unknown for up to a second; a new file is read at once.
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users/%u
  default_fields = uid={uid} gid={gid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}

service imap-login {{
  inet_listener imap {{
    port = {ports.imap}
  }}
  inet_listener imaps {{
    port = {ports.imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {ports.pop3}
  }}
  inet_listener pop3s {{
    port = {ports.pop3s}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    port = {ports.lmtp}
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@localhost
}}
"""

OAUTH2 = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


def write_config(
    root: Path,
    *,
    ports: DovecotPorts,
    tls: bool,
    cert: Path,
    key: Path,
    uid: int,
    gid: int,
    url: str,
) -> Path:
    """``tls=False``: no TLS at all (no STARTTLS, no STLS; the TLS ports must be 0)."""
    (root / "oauth2.conf.ext").write_text(OAUTH2.format(url=url))
    path = root / "dovecot.conf"
    path.write_text(
        CONFIG.format(
            root=root,
            instance=root.name,
            ports=ports,
            ssl="yes" if tls else "no",
            cert=cert,
            key=key,
            uid=uid,
            gid=gid,
        )
    )
    return path
