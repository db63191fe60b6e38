"""Repositories written with python-tuf's Metadata API, good and hostile,
for tufd's TUF 1.0 client (`tufctl tuf client`).

Usage: hostile_repos.py OUT

Writes OUT/<scenario>/phase1 (and phase2 where a client must first trust a
good state and then meet an attack), consistent-snapshot layout, and
OUT/scenarios.json: {scenario: {"phases": n, "expect": "ok"|"fail",
"download": [target, ...]}}. The client refreshes against phase1 (which
must succeed when there is a phase2), then against the last phase, where
the outcome must be "expect".
"""

import copy
import json
import os
import sys
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner, Key, Signature
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

OUT = sys.argv[1]
FUTURE = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
PAST = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)
scenarios = {}


def signer():
    return CryptoSigner(ec.generate_private_key(ec.SECP256R1()))


class Repo:
    def __init__(self):
        self.keys = {r: signer() for r in ("root", "targets", "snapshot", "timestamp", "team")}
        self.root = Metadata(Root(expires=FUTURE, consistent_snapshot=True))
        for r in ("root", "targets", "snapshot", "timestamp"):
            self.root.signed.add_key(self.keys[r].public_key, r)
        self.roots = []
        self.targets = Metadata(Targets(expires=FUTURE))
        self.team = Metadata(Targets(expires=FUTURE))
        team_key = self.keys["team"].public_key
        self.targets.signed.delegations = Delegations(
            keys={team_key.keyid: team_key},
            roles={"team": DelegatedRole("team", [team_key.keyid], 1, True, paths=["team/*"])},
        )
        self.files = {}
        self.snapshot = Metadata(Snapshot(expires=FUTURE))
        self.timestamp = Metadata(Timestamp(expires=FUTURE))
        self.published = {}
        self.sign_root()

    def add_file(self, md, path, data):
        md.signed.targets[path] = TargetFile.from_data(path, data, ["sha256"])
        self.files[path] = data

    def sign_root(self, signers=None):
        self.root.signatures.clear()
        for s in signers or [self.keys["root"]]:
            self.root.sign(s, append=True)
        self.roots.append(self.root.to_bytes())

    def publish(self, ts_expires=FUTURE, targets_signer=None):
        """Signs targets, team, snapshot and timestamp as new versions."""
        self.team.sign(self.keys["team"])
        self.targets.sign(targets_signer or self.keys["targets"])
        self.published[f"{self.team.signed.version}.team.json"] = self.team.to_bytes()
        self.published[f"{self.targets.signed.version}.targets.json"] = self.targets.to_bytes()
        self.snapshot.signed.meta["targets.json"] = MetaFile(self.targets.signed.version)
        self.snapshot.signed.meta["team.json"] = MetaFile(self.team.signed.version)
        self.snapshot.sign(self.keys["snapshot"])
        snap_bytes = self.snapshot.to_bytes()
        self.published[f"{self.snapshot.signed.version}.snapshot.json"] = snap_bytes
        self.timestamp.signed.snapshot_meta = MetaFile.from_data(
            self.snapshot.signed.version, snap_bytes, ["sha256"]
        )
        self.timestamp.signed.expires = ts_expires
        self.timestamp.sign(self.keys["timestamp"])
        self.published["timestamp.json"] = self.timestamp.to_bytes()

    def bump(self):
        for md in (self.targets, self.team, self.snapshot, self.timestamp):
            md.signed.version += 1

    def write(self, d):
        os.makedirs(os.path.join(d, "metadata"), exist_ok=True)
        for i, b in enumerate(self.roots, 1):
            open(os.path.join(d, "metadata", f"{i}.root.json"), "wb").write(b)
        for name, b in self.published.items():
            open(os.path.join(d, "metadata", name), "wb").write(b)
        for path, data in self.files.items():
            info = TargetFile.from_data(path, data, ["sha256"])
            dirname, base = os.path.split(path)
            target = os.path.join(d, "targets", dirname, f"{info.hashes['sha256']}.{base}")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "wb").write(data)


def save(name, phases, expect, download=(), why=""):
    for i, repo_bytes in enumerate(phases, 1):
        repo_bytes.write(os.path.join(OUT, name, f"phase{i}"))
    scenarios[name] = {
        "phases": len(phases),
        "expect": expect,
        "download": list(download),
        "why": why,
    }


def base():
    r = Repo()
    r.add_file(r.targets, "file.txt", b"hello from python-tuf")
    r.add_file(r.team, "team/x.txt", b"team target")
    r.publish()
    return r


r = base()
save("good", [r], "ok", ["file.txt", "team/x.txt"])

# Rollback of each role: a good v2 first, then an older version.
for role in ("timestamp", "snapshot", "targets"):
    r = base()
    old = copy.deepcopy(r)
    r.bump()
    r.publish()
    phase1 = copy.deepcopy(r)
    if role == "timestamp":
        r.published["timestamp.json"] = old.published["timestamp.json"]
    elif role == "snapshot":
        r.timestamp.signed.version += 1
        r.snapshot = old.snapshot
        snap = old.published["1.snapshot.json"]
        r.timestamp.signed.snapshot_meta = MetaFile.from_data(1, snap, ["sha256"])
        r.timestamp.sign(r.keys["timestamp"])
        r.published["timestamp.json"] = r.timestamp.to_bytes()
    else:
        r.snapshot.signed.version += 1
        r.timestamp.signed.version += 1
        r.targets = old.targets
        r.team.signed.version += 1
        r.publish()
    save(f"{role}-rollback", [phase1, r], "fail", why={"timestamp": "timestamp: rollback from version 2 to 1", "snapshot": "snapshot rollback from version 2 to 1", "targets": "targets.json rolled back from version 2 to 1"}[role])

# Freeze: an expired timestamp.
r = Repo()
r.publish(ts_expires=PAST)
save("freeze", [r], "fail", why="timestamp: expired")

# Mix and match: the snapshot file is another validly signed snapshot of
# the same version than the one the timestamp hashed.
r = base()
other = copy.deepcopy(r.snapshot)
other.signed.meta["targets.json"] = MetaFile(1, length=99)
other.sign(r.keys["snapshot"])
r.published["1.snapshot.json"] = other.to_bytes()
save("mix-and-match", [r], "fail", why="1.snapshot.json: more than")

# One key under two IDs does not make a threshold of two.
r = Repo()
k = r.keys["targets"].public_key
alias = Key.from_dict("ff" * 32, copy.deepcopy(k.to_dict()))
r.root.signed.keys[alias.keyid] = alias
r.root.signed.roles["targets"].keyids.append(alias.keyid)
r.root.signed.roles["targets"].threshold = 2
r.roots.clear()
r.sign_root()
r.targets.sign(r.keys["targets"])
sig = r.targets.signatures[k.keyid]
r.targets.signatures[alias.keyid] = Signature(alias.keyid, sig.signature)
r.team.sign(r.keys["team"])
r.published["1.team.json"] = r.team.to_bytes()
raw = r.targets.to_bytes()
r.published["1.targets.json"] = raw
r.snapshot.signed.meta["targets.json"] = MetaFile(1)
r.snapshot.signed.meta["team.json"] = MetaFile(1)
r.snapshot.sign(r.keys["snapshot"])
r.published["1.snapshot.json"] = r.snapshot.to_bytes()
r.timestamp.signed.snapshot_meta = MetaFile(1)
r.timestamp.sign(r.keys["timestamp"])
r.published["timestamp.json"] = r.timestamp.to_bytes()
save("duplicate-key-ids", [r], "fail", why="1 valid signature(s) from distinct keys, threshold is 2")

# Targets signed with the snapshot key.
r = Repo()
r.publish(targets_signer=r.keys["snapshot"])
save("wrong-role-key", [r], "fail", why="targets: 0 valid signature(s)")

# A key of an unknown type beside a real one: the real one's signature
# counts, the unknown one is ignored. (securesystemslib refuses to build
# such a key, so root is edited as JSON and signed over its canonical form.)
r = Repo()
signed = r.root.signed.to_dict()
signed["keys"]["ab" * 32] = {"keytype": "x-quantum", "scheme": "x-quantum", "keyval": {"public": "zz"}}
signed["roles"]["targets"]["keyids"].insert(0, "ab" * 32)
sig = r.keys["root"].sign(encode_canonical(signed).encode("utf-8"))
r.roots = [json.dumps({"signatures": [sig.to_dict()], "signed": signed}, sort_keys=True).encode()]
r.add_file(r.targets, "file.txt", b"unknown key types are ignored")
r.publish()
save("unknown-key-type", [r], "ok", ["file.txt"])

# Root v2 signed only by its own new key, not by the old threshold.
r = base()
new_root_key = signer()
r.root.signed.version += 1
r.root.signed.revoke_key(r.keys["root"].public_key.keyid, "root")
r.root.signed.add_key(new_root_key.public_key, "root")
r.sign_root([new_root_key])
save("root-rotation-not-signed-by-old", [r], "fail", why="not signed by the trusted root's keys")

# Root v2 signed by old and new keys: the client follows it.
r = base()
r.root.signed.version += 1
old_root_signer = r.keys["root"]
r.root.signed.revoke_key(old_root_signer.public_key.keyid, "root")
r.keys["root"] = signer()
r.root.signed.add_key(r.keys["root"].public_key, "root")
r.sign_root([old_root_signer, r.keys["root"]])
save("root-rotation", [r], "ok", ["file.txt"])

# A delegated role listing a target outside its paths: not trusted.
r = Repo()
r.add_file(r.team, "other/y.txt", b"outside")
r.publish()
save("delegation-outside-paths", [r], "fail", ["other/y.txt"], why="not listed by the repository")

# Fast-forward recovery by rotating the snapshot key alone (§5.3.11 drops
# the trusted timestamp and snapshot both): a snapshot fast-forwarded to
# version 100, which the online timestamp went on to list, is trusted; then
# root v2 replaces the snapshot key and snapshot starts again at version 2.
r = base()
r.snapshot.signed.version = 100
r.timestamp.signed.version += 1
r.publish()
phase1 = copy.deepcopy(r)
r.root.signed.version += 1
r.root.signed.revoke_key(r.keys["snapshot"].public_key.keyid, "snapshot")
r.keys["snapshot"] = signer()
r.root.signed.add_key(r.keys["snapshot"].public_key, "snapshot")
r.sign_root()
r.snapshot.signed.version = 2
r.timestamp.signed.version += 1
r.publish()
save("snapshot-key-fast-forward-recovery", [phase1, r], "ok", ["file.txt"])

json.dump(scenarios, open(os.path.join(OUT, "scenarios.json"), "w"), indent=1)
print("ok")
