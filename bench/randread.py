#!/usr/bin/env python3
"""bench/randread.py FILE SECONDS [SEED] [BLOCK]: random aligned BLOCK-byte preads (default
4096) at offsets from a seeded PRNG, for SECONDS; prints "<reads per second> <reads> <seconds>".

POSIX_FADV_RANDOM is set on the file so the kernel does no readahead: each read that misses
the page cache becomes one read of the filesystem (FUSE or otherwise). Every read must return
BLOCK bytes; a short read is an error (exit 1)."""
import os
import random
import sys
import time


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, seconds = sys.argv[1], float(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    block = int(sys.argv[4]) if len(sys.argv) > 4 else 4096
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    rng = random.Random(seed)
    blocks = size // block
    n = 0
    start = time.monotonic()
    deadline = start + seconds
    now = start
    while now < deadline:
        for _ in range(64):
            off = rng.randrange(blocks) * block
            if len(os.pread(fd, block, off)) != block:
                print(f"randread: short read at {off}", file=sys.stderr)
                return 1
            n += 1
        now = time.monotonic()
    os.close(fd)
    elapsed = now - start
    print(f"{n / elapsed:.1f} {n} {elapsed:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
