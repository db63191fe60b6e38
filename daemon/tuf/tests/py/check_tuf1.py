"""Checks TUF 1.0 files written by tufd against python-tuf.

Usage: check_tuf1.py DIR

DIR holds ROLE.json files (ROLE is root, targets, snapshot, timestamp or a
delegated role name), ROLE.canonical (tufd's canonical bytes of `signed`)
ROLE.pretty (tufd's indented form) and keys.json ({keyid: pem}). For every
file: python-tuf parses it, its default serializer reproduces the bytes and
JSONSerializer(compact=False) the indented bytes, securesystemslib's canonical encoder
reproduces the canonical bytes, and every key ID is what securesystemslib
computes. Then root's and targets' signatures are verified with python-tuf.
Then python-tuf writes its own metadata into DIR/py/ for tufd to read back.
"""

import json
import os
import sys
from datetime import datetime, timezone

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.serialization.json import JSONSerializer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)

d = sys.argv[1]
failures = []

for name in sorted(os.listdir(d)):
    if not name.endswith(".json") or name == "keys.json":
        continue
    raw = open(os.path.join(d, name), "rb").read()
    md = Metadata.from_bytes(raw)
    if md.to_bytes() != raw:
        failures.append(f"{name}: python-tuf serializes other bytes:\n{md.to_bytes()!r}\n{raw!r}")
    pretty = open(os.path.join(d, name[: -len(".json")] + ".pretty"), "rb").read()
    if JSONSerializer(compact=False).serialize(md) != pretty:
        failures.append(f"{name}: python-tuf's indented form differs")
    canon = open(os.path.join(d, name[: -len(".json")] + ".canonical"), "rb").read()
    ours = encode_canonical(md.signed.to_dict()).encode("utf-8")
    if ours != canon:
        failures.append(f"{name}: canonical differs:\n{ours!r}\n{canon!r}")

for keyid, pem in json.load(open(os.path.join(d, "keys.json"))).items():
    pub = serialization.load_pem_public_key(pem.encode())
    k = SSlibKey.from_crypto(pub)
    if k.keyid != keyid:
        failures.append(f"key id {keyid}: securesystemslib says {k.keyid}")

root = Metadata[Root].from_bytes(open(os.path.join(d, "root.json"), "rb").read())
for role in ("root", "targets", "snapshot", "timestamp"):
    md = Metadata.from_bytes(open(os.path.join(d, role + ".json"), "rb").read())
    try:
        root.verify_delegate(role, md)
    except Exception as e:  # noqa: BLE001
        failures.append(f"{role}: python-tuf does not verify it: {e}")
targets = Metadata[Targets].from_bytes(open(os.path.join(d, "targets.json"), "rb").read())
if os.path.exists(os.path.join(d, "team.json")):
    team = Metadata.from_bytes(open(os.path.join(d, "team.json"), "rb").read())
    try:
        targets.verify_delegate("team", team)
    except Exception as e:  # noqa: BLE001
        failures.append(f"team: python-tuf does not verify it: {e}")

# python-tuf's own metadata, for tufd to parse and re-serialize.
out = os.path.join(d, "py")
os.makedirs(out, exist_ok=True)
signer = CryptoSigner(ec.generate_private_key(ec.SECP256R1()))
exp = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
r = Root(expires=exp)
for role in ("root", "targets", "snapshot", "timestamp"):
    r.add_key(signer.public_key, role)
r.unrecognized_fields["x-tufd-test"] = {"é": "line\nbreak \u0001 \U0001F600"}
t = Targets(expires=exp)
t.targets["a/ü b.txt"] = TargetFile(5, {"sha256": "ab" * 32}, "a/ü b.txt", {"custom": {"n": 1, "l": [True, None]}})
t.delegations = Delegations(
    keys={signer.public_key.keyid: signer.public_key},
    roles={"team": DelegatedRole("team", [signer.public_key.keyid], 1, True, paths=["team/*"])},
)
bins = Targets(expires=exp)
bins.delegations = Delegations(
    keys={signer.public_key.keyid: signer.public_key},
    roles=None,
    succinct_roles=SuccinctRoles([signer.public_key.keyid], 1, 8, "bin"),
)
s = Snapshot(expires=exp)
s.meta["targets.json"] = MetaFile(3, 1234, {"sha256": "cd" * 32})
ts = Timestamp(expires=exp)
ts.snapshot_meta = MetaFile(4)
for name, signed in (("root", r), ("targets", t), ("bins", bins), ("snapshot", s), ("timestamp", ts)):
    md = Metadata(signed)
    md.sign(signer)
    open(os.path.join(out, name + ".json"), "wb").write(md.to_bytes())
    open(os.path.join(out, name + ".canonical"), "wb").write(encode_canonical(signed.to_dict()).encode("utf-8"))

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("ok")
