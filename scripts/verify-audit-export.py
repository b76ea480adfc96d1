#!/usr/bin/env python3
"""Verify a Blazz audit export offline, independently of Blazz.

    blazz audit export --workspace W --format jsonl --out events.jsonl
    blazz audit checkpoints --workspace W > checkpoints.jsonl
    blazz audit public-key                       # obtained from the operator, kept by the auditor
    python3 scripts/verify-audit-export.py events.jsonl checkpoints.jsonl --public-key HEX

Checks, for a workspace's export from its first event (no --from): each event's content digest and
its link to its stream predecessor, the workspace's head after each checkpointed number of events,
and each checkpoint's Ed25519 signature by the given key (with `openssl pkeyutl`, OpenSSL 3).
The definitions are in docs/adr/0008-tamper-evidence.md. Needs only Python 3.9+ and openssl.
Exit status 0: intact; 1: the first broken link is printed; 2: bad usage.
"""
import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ZERO = bytes(32)
# DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), followed by the 32 key bytes.
ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")


class Number(str):
    """A JSON number kept as its literal text."""


def parse(line):
    return json.loads(line, parse_float=Number, parse_int=Number)


def canonical(v):
    """Sorted keys, no whitespace, numbers as written (a float zero as 0.0)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, Number):
        if any(c in v for c in ".eE") and float(v) == 0.0:
            return "0.0"
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical(v[k]) for k in sorted(v)) + "}"
    raise ValueError(f"not JSON: {v!r}")


def digest(e):
    """Over the payload as stored: with personal fields sealed (`sealed_payload`) where it has them."""
    content = {k: e[k] for k in ("event_id", "event_type", "metadata", "schema_version", "stream_id", "workspace_id")}
    content["payload"] = e.get("sealed_payload", e["payload"])
    return hashlib.sha256(canonical(content).encode("utf-8")).digest()


def micros(timestamp):
    t = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (t - EPOCH) // timedelta(microseconds=1)


def be64(n):
    return int(n).to_bytes(8, "big", signed=True)


def link(previous, content_digest, e):
    return hashlib.sha256(
        previous + content_digest + be64(e["stream_version"]) + be64(e["position"]) + be64(micros(e["recorded_at"]))
    ).digest()


def message(c):
    return (
        f"blazz audit checkpoint v1\nscope {c['scope']}\nevents {c['events']}\nposition {c['position']}\n"
        f"head {c['head']}\nsigned_at {c['signed_at']}\n"
    )


def signed(c, public_key, workdir):
    paths = {name: os.path.join(workdir, name) for name in ("key.pem", "message", "signature")}

    der = ED25519_SPKI + public_key
    with open(paths["key.pem"], "w") as f:
        f.write("-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der).decode() + "\n-----END PUBLIC KEY-----\n")
    with open(paths["message"], "wb") as f:
        f.write(message(c).encode("utf-8"))
    with open(paths["signature"], "wb") as f:
        f.write(bytes.fromhex(c["signature"]))
    run = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", paths["key.pem"], "-rawin",
         "-in", paths["message"], "-sigfile", paths["signature"]],
        capture_output=True,
    )
    return run.returncode == 0


def verify(events_path, checkpoints_path, public_key):
    checkpoints = {}
    with open(checkpoints_path) as f:
        for line in f:
            if line.strip():
                c = json.loads(line)
                checkpoints[int(c["events"])] = c
    streams, head, count, checked = {}, ZERO, 0, 0
    with tempfile.TemporaryDirectory() as workdir, open(events_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            e = parse(line)
            where = f"position {e['position']} ({e['stream_id']} version {e['stream_version']})"
            if e.get("hash") is None:
                return f"{where}: the event carries no hash"
            version, previous = streams.get(e["stream_id"], (0, ZERO))
            if int(e["stream_version"]) != version + 1:
                return f"{where}: the stream goes from version {version} to {e['stream_version']}"
            h = link(previous, digest(e), e)
            if h.hex() != e["hash"]:
                return f"{where}: the content or its place differs from what was appended"
            streams[e["stream_id"]] = (version + 1, h)
            count += 1
            head = hashlib.sha256(head + h).digest()
            c = checkpoints.pop(count, None)
            if c is not None:
                if bytes.fromhex(c["public_key"]) != public_key or not signed(c, public_key, workdir):
                    return f"{where}: the checkpoint at {count} events is not signed by the given key"
                if c["head"] != head.hex() or int(c["position"]) != int(e["position"]):
                    return f"{where}: the checkpoint at {count} events does not match the events before it"
                checked += 1
    if checkpoints:
        n = min(checkpoints)
        return f"the checkpoint at {n} events covers events the export does not hold (only {count})"
    print(f"intact: {count} events, {checked} signed checkpoints")
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("events")
    p.add_argument("checkpoints")
    p.add_argument("--public-key", required=True, help="the trusted signer, 64 hex digits")
    a = p.parse_args()
    try:
        key = bytes.fromhex(a.public_key.strip())
        assert len(key) == 32
    except (ValueError, AssertionError):
        print("--public-key: 64 hex digits", file=sys.stderr)
        return 2
    broken = verify(a.events, a.checkpoints, key)
    if broken:
        print(f"BROKEN at {broken}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
