#!/usr/bin/env python3
"""Round trips of a Clacks client running RETRIEVE in a loop while another connection sends
memcached `stats` in a loop, on a cache of 200,000 values of 1,000 bytes (200 MB of data).

    bench/stats_stall.py target/release/clacksd
"""
import base64
import socket
import subprocess
import sys
import tempfile
import threading
import time

binary = sys.argv[1]
d = tempfile.mkdtemp()
cfg = f"""<clacks><username>u</username><password>p</password><socket>{d}/c.sock</socket>
<memcached><socket>{d}/m.sock</socket></memcached><maxmemory>0</maxmemory></clacks>"""
open(f"{d}/c.xml","w").write(cfg)
srv = subprocess.Popen([binary, "--config", f"{d}/c.xml"], stderr=open(f"{d}/log","w"))
def conn(path):
    for _ in range(500):
        try:
            s = socket.socket(socket.AF_UNIX); s.connect(path); return s
        except OSError: time.sleep(0.01)
    raise SystemExit("no server")
mc = conn(f"{d}/m.sock")
val = b"x" * 1000
N = 200_000
batch = b"".join(b"set k%d 0 0 1000 noreply\r\n" % i + val + b"\r\n" for i in range(1000))
for j in range(N // 1000):
    mc.sendall(batch.replace(b"set k", b"set %d_k" % j))
mc.sendall(b"version\r\n")
buf = b""
while b"VERSION" not in buf: buf += mc.recv(65536)
def mcstats(s):
    s.sendall(b"stats\r\n"); b = b""
    while not b.endswith(b"END\r\n"): b += s.recv(65536)
    return b
st = mcstats(mc)
print("filled:", [l for l in st.decode().split("\r\n") if "curr_items" in l or l.startswith("STAT bytes")])
cl = conn(f"{d}/c.sock")
f = cl.makefile("rb")
f.readline(); f.readline()
tok = base64.b64encode(b"u").decode() + ":" + base64.b64encode(b"p").decode()
cl.sendall(f"OVERHEAD A {tok}\r\n".encode()); f.readline()
stop = time.time() + 5
nstats = [0]; stat_t = [0.0]
def hammer():
    s = conn(f"{d}/m.sock")
    while time.time() < stop:
        t = time.perf_counter(); mcstats(s); stat_t[0] = max(stat_t[0], time.perf_counter() - t); nstats[0] += 1
th = threading.Thread(target=hammer); th.start()
worst = 0; n = 0
while time.time() < stop:
    t = time.perf_counter()
    cl.sendall(b"RETRIEVE k5_k1\r\n"); f.readline()
    worst = max(worst, time.perf_counter() - t); n += 1
th.join()
print(f"RETRIEVE round trips {n}, worst {worst*1000:.1f} ms; stats calls {nstats[0]}, slowest stats {stat_t[0]*1000:.1f} ms")
srv.terminate(); srv.wait()
