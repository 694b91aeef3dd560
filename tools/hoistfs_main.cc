// hoistfs: the FUSE daemon, one process per mount. Until the mount lands it prints its usage.
#include <cstdio>
#include <cstring>

static void Usage(FILE* out) {
  std::fputs(
      "usage: hoistfs [-f] [-o opt,...] IMAGE MOUNTPOINT\n"
      "Mounts IMAGE (a registry reference) read-only at MOUNTPOINT, fetching file contents\n"
      "lazily. (The mount is not implemented yet.)\n",
      out);
}

int main(int argc, char** argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0)) {
    Usage(stdout);
    return 0;
  }
  Usage(stderr);
  return 2;
}
