#!/bin/bash
# rounds.sh SERVER_BIN CLIENT_BIN ROUNDS [keep server flags...]
#
# The per-change measurements of docs/performance.md: starts 4
# 'keep server' processes with volumes under $VOLDIR (default
# /dev/shm/keep-rounds, tmpfs), then for each round removes their blocks,
# puts $DATA (default /dev/shm/keep-rounds-data, 512 MiB of random bytes,
# made if missing) at $REPL replicas (default 2) with 'keep put', and
# reads it back with 'keep get' into $OUT (default /dev/shm/keep-rounds-got).
# It prints MB/s, the client's CPU-seconds per GiB (from /usr/bin/time)
# and the servers' per GiB stored or served (utime+stime from
# /proc/PID/stat). The servers listen on port 0 and report their
# addresses through --addr-file.
set -euo pipefail
SB=$1; CB=$2; R=$3; shift 3
VD=${VOLDIR:-/dev/shm/keep-rounds}; DATA=${DATA:-/dev/shm/keep-rounds-data}
OUT=${OUT:-/dev/shm/keep-rounds-got}; N=${REPL:-2}
[ -f "$DATA" ] || head -c 536870912 /dev/urandom > "$DATA"
rm -rf "$VD"; mkdir -p "$VD"
pids=()
for i in 0 1 2 3; do
	mkdir -p "$VD/v$i"
	"$SB" server --listen 127.0.0.1:0 --volume "$VD/v$i" --addr-file "$VD/a$i" "$@" > "$VD/log$i" 2>&1 &
	pids+=($!)
done
trap 'kill ${pids[*]} 2>/dev/null' EXIT
for i in 0 1 2 3; do while [ ! -s "$VD/a$i" ]; do sleep 0.1; done; done
python3 - "$VD" <<'P'
import json, sys
vd = sys.argv[1]; items = []
for i in range(4):
    h, p = open(f'{vd}/a{i}').read().strip().rsplit(':', 1)
    items.append(dict(uuid=f"zzzzz-bi6l4-00000000000000{i}", service_host=h, service_port=int(p),
                      service_ssl_flag=False, service_type="disk", read_only=False))
json.dump(dict(kind="arvados#keepServiceList", items=items), open(f'{vd}/services.json', 'w'))
P
scpu() { t=0; for p in "${pids[@]}"; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
SZ=$(stat -c %s "$DATA")
for r in $(seq "$R"); do
	rm -rf "$VD"/v*/[0-9a-f][0-9a-f][0-9a-f]
	s0=$(scpu); t0=$(date +%s.%N)
	/usr/bin/time -f "%U %S" -o "$VD/put.time" "$CB" put --services "$VD/services.json" --replicas "$N" --no-cache --no-progress "$DATA" > "$VD/manifest"
	t1=$(date +%s.%N); s1=$(scpu)
	/usr/bin/time -f "%U %S" -o "$VD/get.time" "$CB" get --services "$VD/services.json" --no-progress "$VD/manifest" -o "$OUT"
	t2=$(date +%s.%N); s2=$(scpu)
	rm -f "$OUT"
	read -r pu ps < "$VD/put.time"; read -r gu gs < "$VD/get.time"
	python3 -c "
g = $SZ / 2**30; hz = $(getconf CLK_TCK)
print('put: %.0f MB/s client %.2f server/stored %.2f | get: %.0f MB/s client %.2f server/served %.2f' % (
    $SZ/1e6/($t1-$t0), ($pu+$ps)/g, ($s1-$s0)/hz/($N*g), $SZ/1e6/($t2-$t1), ($gu+$gs)/g, ($s2-$s1)/hz/g))"
done
