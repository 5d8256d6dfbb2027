#!/usr/bin/env python3
"""Times `keep server` from start to its "listening" line on a Directory
volume of many small blocks, and, for servers that report it in /_status,
until the volume's background scan is done.

    go build -o /tmp/keep ./cmd/keep
    python3 keepstore/dirvolume/startup_time.py --keep /tmp/keep --blocks 1000000 --runs 3

The volume is made under --dir (default /dev/shm, a tmpfs) and removed
at the end unless --keep-volume.
"""
import argparse, hashlib, json, os, re, shutil, subprocess, sys, tempfile, time, urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--keep", action="append", required=True, help="keep binary (repeat to compare)")
ap.add_argument("--blocks", type=int, default=1000000)
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--dir", default="/dev/shm")
ap.add_argument("--keep-volume", action="store_true")
a = ap.parse_args()

base = tempfile.mkdtemp(prefix="keep-startup-", dir=a.dir)
vol = os.path.join(base, "vol")
try:
    t0 = time.monotonic()
    os.mkdir(vol)
    made = set()
    for i in range(a.blocks):
        data = b"block %d" % i
        h = hashlib.md5(data).hexdigest()
        d = os.path.join(vol, h[:3])
        if h[:3] not in made:
            os.makedirs(d, exist_ok=True)
            made.add(h[:3])
        with open(os.path.join(d, h), "wb") as f:
            f.write(data)
    print(f"made {a.blocks} blocks in {time.monotonic() - t0:.1f} s under {vol}", flush=True)
    tokfile = os.path.join(base, "mgmt-token")
    with open(tokfile, "w") as f:
        f.write("startup-time-token\n")
    for keep in a.keep:
        for run in range(a.runs):
            start = time.monotonic()
            p = subprocess.Popen([keep, "server", "--listen", "127.0.0.1:0", "--volume", vol,
                                  "--management-token-file", tokfile],
                                 stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
            addr = None
            for line in p.stderr:
                m = re.search(r'listening" addr=(\S+)', line)
                if m:
                    addr = m.group(1)
                    break
            listened = time.monotonic() - start
            scanned = ""
            if addr:
                while True:
                    req = urllib.request.Request(f"http://{addr}/_status",
                                                 headers={"Authorization": "Bearer startup-time-token"})
                    st = json.load(urllib.request.urlopen(req))
                    scan = st["volumes"][0].get("scan")
                    if scan is None:
                        break
                    if scan["state"] != "running":
                        blocks = st["volumes"][0]["blocks"]
                        scanned = f", scan {scan['state']} after {time.monotonic() - start:.2f} s ({blocks} blocks)"
                        break
                    time.sleep(0.05)
            p.terminate()
            p.wait()
            print(f"{keep} run {run + 1}: listening after {listened:.2f} s{scanned}", flush=True)
finally:
    if a.keep_volume:
        print("volume kept:", vol)
    else:
        shutil.rmtree(base)
