"""Reads a TUF 1.0 repository directory with python-tuf's ngclient.

Usage: ngclient.py REPO_DIR CLIENT_DIR EXPECT_JSON

Serves REPO_DIR over HTTP on a free loopback port (http.server in a
thread), bootstraps from REPO_DIR/metadata/1.root.json on first use (then the trusted metadata in CLIENT_DIR carries over between
runs, as for a real client), refreshes, and for EXPECT_JSON
{"present": {name: sha256 or null}, "absent": [name, ...]} checks every
target: present ones are found (and downloaded and hash-checked when a
sha256 is given), absent ones are not. Every metadata file in REPO_DIR is
also parsed by python-tuf's Metadata API and re-serialized byte for byte.
Prints a JSON report of the trusted versions; exits 1 on any failure.
"""

import functools
import hashlib
import http.server
import json
import os
import sys
import threading

from tuf.api.metadata import Metadata
from tuf.ngclient import Updater

repo, client, expect = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
failures = []

for name in sorted(os.listdir(os.path.join(repo, "metadata"))):
    if not name.endswith(".json"):
        continue
    raw = open(os.path.join(repo, "metadata", name), "rb").read()
    try:
        if Metadata.from_bytes(raw).to_bytes() != raw:
            failures.append(f"{name}: python-tuf re-serializes other bytes")
    except Exception as e:  # noqa: BLE001
        failures.append(f"{name}: python-tuf cannot parse it: {e}")


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), functools.partial(Quiet, directory=repo)
)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_address[1]}"

md_dir = os.path.join(client, "metadata")
dl_dir = os.path.join(client, "downloads")
os.makedirs(md_dir, exist_ok=True)
os.makedirs(dl_dir, exist_ok=True)
# First run: trust 1.root.json (python-tuf 7 takes it as `bootstrap`);
# later runs: the root python-tuf stored in the metadata dir.
bootstrap = None
if not os.path.exists(os.path.join(md_dir, "root.json")):
    bootstrap = open(os.path.join(repo, "metadata", "1.root.json"), "rb").read()

report = {}
try:
    updater = Updater(
        metadata_dir=md_dir,
        metadata_base_url=base + "/metadata/",
        target_dir=dl_dir,
        target_base_url=base + "/targets/",
        bootstrap=bootstrap,
    )
    updater.refresh()
    trusted = updater._trusted_set  # noqa: SLF001 (versions for the report)
    report = {
        "root": trusted.root.version,
        "timestamp": trusted.timestamp.version,
        "snapshot": trusted.snapshot.version,
        "targets": trusted.targets.version,
        "custom": {},
    }
    for name, sha in expect.get("present", {}).items():
        info = updater.get_targetinfo(name)
        if info is None:
            failures.append(f"target {name} not found")
            continue
        report["custom"][name] = info.unrecognized_fields.get("custom")
        if sha is not None:
            path = updater.download_target(info)
            got = hashlib.sha256(open(path, "rb").read()).hexdigest()
            if got != sha:
                failures.append(f"target {name}: downloaded sha256 {got}, expected {sha}")
    for name in expect.get("absent", []):
        if updater.get_targetinfo(name) is not None:
            failures.append(f"target {name} is still listed")
except Exception as e:  # noqa: BLE001
    failures.append(f"ngclient failed: {type(e).__name__}: {e}")
finally:
    server.shutdown()

print(json.dumps({"report": report, "failures": failures}))
sys.exit(1 if failures else 0)
