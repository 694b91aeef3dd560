#!/usr/bin/env python3
"""The gap in service of a hoist mount when its daemon is killed (kill -9) or upgraded.

Usage: gap.py MOUNTPOINT STATE_FILE ACTION RUNS [HOIST]
  ACTION: kill    SIGKILL to the serving daemon (the state file's pid); the supervisor restarts
                  it and the new daemon takes the live connection over
          upgrade `HOIST upgrade MOUNTPOINT`

Readers: 4 threads, each in a loop: a random file of the mount, posix_fadvise(DONTNEED) so the
read must go to the daemon, then a 4 KiB pread at a random offset; every read's start and end
are recorded (time.monotonic). Per run: wait 0.5 s of steady reads, act, wait until the state
file names a new live daemon and 0.5 s more. Reported per run:
  gap    from the action to the completion of the first read that started after it (for a
         kill: the first request the new daemon answered)
  stall  the longest read that was in flight at the action or started after it (until the end
         of the run)
  failed reads that raised an error (any errno) -- must be 0
  quiet  the baseline of the same run: the longest read of the 0.5 s before the action (the
         same readers, nothing happening), so stall/quiet is the cost of the action
Output: one JSON line per run, then a summary line with the medians.
"""
import json, os, random, signal, statistics, subprocess, sys, threading, time

mp, state_file, action, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
hoist = sys.argv[5] if len(sys.argv) > 5 else "hoist"
files = []
for d, _, names in os.walk(mp):
    for n in names:
        p = os.path.join(d, n)
        if os.path.getsize(p) >= 4096:
            files.append((p, os.path.getsize(p)))
lock = threading.Lock()
events = []  # (start, end, ok)
stop = False

def reader(seed):
    r = random.Random(seed)
    while not stop:
        p, size = r.choice(files)
        off = r.randrange(0, size - 4096 + 1) & ~4095
        t0 = time.monotonic()
        ok = True
        try:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                os.pread(fd, 4096, off)
            finally:
                os.close(fd)
        except OSError:
            ok = False
        t1 = time.monotonic()
        with lock:
            events.append((t0, t1, ok))

def daemon_pid():
    try:
        with open(state_file) as f:
            return json.load(f)["pid"]
    except (OSError, ValueError, KeyError):
        return 0

def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False

threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
results = []
try:
    for run in range(runs):
        with lock:
            events.clear()
        time.sleep(0.5)
        old = daemon_pid()
        t_act = time.monotonic()
        with lock:
            quiet_ev = [e for e in events if e[1] < t_act]
            events.clear()
        quiet = max((e[1] - e[0] for e in quiet_ev), default=0.0)
        if action == "kill":
            os.kill(old, signal.SIGKILL)
        else:
            subprocess.run([hoist, "upgrade", mp], check=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            new = daemon_pid()
            if new and new != old and alive(new) and not alive(old):
                break
            if time.monotonic() > deadline:
                sys.exit("no new daemon within 30 s")
            time.sleep(0.005)
        time.sleep(0.5)
        with lock:
            ev = list(events)
        after = [e for e in ev if e[1] >= t_act]
        first_ok = min((e[1] for e in ev if e[2] and e[0] >= t_act), default=None)
        gap = (first_ok - t_act) if first_ok is not None else None
        stall = max((e[1] - max(e[0], t_act) for e in after), default=0.0)
        failed = sum(1 for e in ev if not e[2])
        r = {"run": run + 1, "action": action, "gap_ms": round(gap * 1000, 2) if gap is not None else None,
             "stall_ms": round(stall * 1000, 2), "quiet_ms": round(quiet * 1000, 2),
             "failed": failed, "reads": len(ev)}
        results.append(r)
        print(json.dumps(r), flush=True)
finally:
    stop = True
    for t in threads:
        t.join()
gaps = [r["gap_ms"] for r in results if r["gap_ms"] is not None]
print(json.dumps({"summary": action, "runs": len(results),
                  "median_gap_ms": statistics.median(gaps) if gaps else None,
                  "median_stall_ms": statistics.median(r["stall_ms"] for r in results),
                  "max_stall_ms": max(r["stall_ms"] for r in results),
                  "median_quiet_ms": statistics.median(r["quiet_ms"] for r in results),
                  "failed_reads": sum(r["failed"] for r in results)}), flush=True)
