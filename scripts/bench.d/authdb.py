"""The auth modes' subscribers (register-auth, call-auth): N users with
plain passwords, in one SQLite file per server (the two layouts' `version`
rows differ: SER 0.9's subscriber is version 6, Kamailio 5.6's auth_db
wants 7), and a sipp injection file of them (unused: sipp 3.6.1 cannot put
fields in its [authentication] keyword, so every call is by the first
user)."""
import hashlib
import os
import subprocess

DOMAIN = "example.com"


def users(n):
    return [(f"u{i:05d}", f"pw{i:05d}x") for i in range(n)]


def make(tmp, serctl, n):
    """Returns (ser db, Kamailio db, sipp CSV) paths under `tmp`/auth."""
    d = os.path.join(tmp, "auth")
    os.makedirs(d, exist_ok=True)
    ser_db, kam_db = os.path.join(d, "ser.db"), os.path.join(d, "kamailio.db")
    csv = os.path.join(d, "users.csv")
    us = users(n)
    # ser: its own tool, SER 0.9's schema (serctl db init), then serctl add
    # per user, as an operator would
    url = f"sqlite://{ser_db}"
    env = dict(os.environ, SIP_DOMAIN=DOMAIN)
    subprocess.run([serctl, "-d", url, "db", "init"], check=True, env=env,
                   capture_output=True, timeout=30)
    for u, p in us:
        subprocess.run([serctl, "-d", url, "add", u, p, f"{u}@{DOMAIN}"], check=True,
                       env=env, capture_output=True, timeout=30)
    # Kamailio 5.6: its own subscriber layout and version rows
    # (utils/kamctl/sqlite/standard-create.sql, auth_db-create.sql)
    rows = []
    for u, p in us:
        ha1 = hashlib.md5(f"{u}:{DOMAIN}:{p}".encode()).hexdigest()
        ha1b = hashlib.md5(f"{u}@{DOMAIN}:{DOMAIN}:{p}".encode()).hexdigest()
        rows.append(f"INSERT INTO subscriber (username, domain, password, ha1, ha1b) "
                    f"VALUES ('{u}', '{DOMAIN}', '{p}', '{ha1}', '{ha1b}');")
    sql = """BEGIN;
CREATE TABLE version (id INTEGER PRIMARY KEY NOT NULL,
  table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL,
  CONSTRAINT version_table_name_idx UNIQUE (table_name));
INSERT INTO version (table_name, table_version) VALUES ('version', 1);
CREATE TABLE subscriber (id INTEGER PRIMARY KEY NOT NULL,
  username VARCHAR(64) DEFAULT '' NOT NULL, domain VARCHAR(64) DEFAULT '' NOT NULL,
  password VARCHAR(64) DEFAULT '' NOT NULL, ha1 VARCHAR(128) DEFAULT '' NOT NULL,
  ha1b VARCHAR(128) DEFAULT '' NOT NULL,
  CONSTRAINT subscriber_account_idx UNIQUE (username, domain));
CREATE INDEX subscriber_username_idx ON subscriber (username);
INSERT INTO version (table_name, table_version) VALUES ('subscriber', 7);
""" + "\n".join(rows) + "\nCOMMIT;\n"
    if os.path.exists(kam_db):
        os.remove(kam_db)
    subprocess.run(["sqlite3", kam_db], input=sql, text=True, check=True,
                   capture_output=True, timeout=30)
    with open(csv, "w") as f:
        f.write("SEQUENTIAL\n")
        for u, p in us:
            f.write(f"{u};{p}\n")
    return ser_db, kam_db, csv
