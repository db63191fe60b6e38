"""python-tuf's repository API on the same workload as tufd's bench.

Usage: bench_repo.py DIR TARGETS BINS RUNS

Builds a repository of TARGETS targets in DIR/flat (all in targets.json)
and DIR/bins (BINS succinct hash bins), untimed, then times RUNS times
"add one target" as a repository tool does it with python-tuf's Metadata
API: read the role that lists the target from disk, add it, bump the
version, sign, write; the same for snapshot and timestamp. Software ECDSA
P-256 keys (securesystemslib CryptoSigner). Prints JSON with the median
seconds per add and the process's peak RSS after each repository.
"""

import json
import os
import resource
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
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

out, n_targets, n_bins, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
signer = CryptoSigner(ec.generate_private_key(ec.SECP256R1()))
exp = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)


def tf(i):
    return TargetFile(1000 + i, {"sha256": f"{i:064x}"}, f"file-{i}.tgz")


def write(d, name, md):
    md.sign(signer, append=False)
    with open(os.path.join(d, name), "wb") as f:
        f.write(md.to_bytes())


def build(d, bins):
    os.makedirs(d, exist_ok=True)
    root = Root(expires=exp)
    for role in ("root", "targets", "snapshot", "timestamp"):
        root.add_key(signer.public_key, role)
    write(d, "root.json", Metadata(root))
    top = Targets(expires=exp)
    snap = Snapshot(expires=exp)
    if bins:
        succinct = SuccinctRoles([signer.public_key.keyid], 1, bins.bit_length() - 1, "bins")
        top.delegations = Delegations({signer.public_key.keyid: signer.public_key}, None, succinct)
        contents = {name: Targets(expires=exp) for name in succinct.get_roles()}
        for i in range(n_targets):
            t = tf(i)
            contents[succinct.get_role_for_target(t.path)].targets[t.path] = t
        for name, content in contents.items():
            write(d, f"{name}.json", Metadata(content))
            snap.meta[f"{name}.json"] = MetaFile(1)
    else:
        for i in range(n_targets):
            t = tf(i)
            top.targets[t.path] = t
    write(d, "targets.json", Metadata(top))
    write(d, "snapshot.json", Metadata(snap))
    ts = Timestamp(expires=exp)
    write(d, "timestamp.json", Metadata(ts))
    return top


def add_one(d, top, i):
    t = tf(n_targets + i)
    role = "targets"
    if top.delegations is not None:
        role = top.delegations.succinct_roles.get_role_for_target(t.path)
    md = Metadata.from_file(os.path.join(d, f"{role}.json"))
    md.signed.targets[t.path] = t
    md.signed.version += 1
    write(d, f"{role}.json", md)
    snap = Metadata.from_file(os.path.join(d, "snapshot.json"))
    snap.signed.meta[f"{role}.json"] = MetaFile(md.signed.version)
    snap.signed.version += 1
    write(d, "snapshot.json", snap)
    ts = Metadata.from_file(os.path.join(d, "timestamp.json"))
    ts.signed.snapshot_meta = MetaFile(snap.signed.version)
    ts.signed.version += 1
    write(d, "timestamp.json", ts)


report = {}
for label, bins in (("flat", 0), ("bins", n_bins)):
    d = os.path.join(out, label)
    top = build(d, bins)
    times = []
    for i in range(runs):
        start = time.perf_counter()
        add_one(d, top, i)
        times.append(time.perf_counter() - start)
    report[label] = statistics.median(times)
    report[label + "_targets_json_bytes"] = os.path.getsize(os.path.join(d, "targets.json"))
    # Peak RSS of this process so far (KiB on Linux).
    report[label + "_peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(report))
