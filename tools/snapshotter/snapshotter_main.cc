// hoist-snapshotter: see tools/snapshotter/daemon.h. No lazy layer source is configured yet:
// every layer is unpacked by containerd (the seam is remote_layer_source.h).
#include "tools/snapshotter/daemon.h"

int main(int argc, char** argv) { return hoist::SnapshotterMain(argc, argv, nullptr); }
