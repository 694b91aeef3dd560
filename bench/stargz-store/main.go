// stargz-store for hoist's benchmarks (bench/podman_pull_run.sh, issue 15): stargz-snapshotter's
// additional layer store for containers/storage (podman, CRI-O), built from Debian's
// golang-github-containerd-stargz-snapshotter-dev (0.12), which ships the store library but not
// the daemon. Build with bench/stargz-store/build.sh.
//
//	stargz-store --root DIR [--config FILE] [--log-level LEVEL] MOUNTPOINT
//
// FILE is stargz's own config.toml (fs options, [resolver] mirrors); absent means defaults.
// Credentials come from the docker config ($DOCKER_CONFIG or ~/.docker/config.json); a registry
// on localhost is spoken to over plain HTTP. The process mounts MOUNTPOINT, serves it in the
// foreground and unmounts it on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/BurntSushi/toml"
	"github.com/containerd/containerd/log"
	fsconfig "github.com/containerd/stargz-snapshotter/fs/config"
	memorymetadata "github.com/containerd/stargz-snapshotter/metadata/memory"
	"github.com/containerd/stargz-snapshotter/service/keychain/dockerconfig"
	"github.com/containerd/stargz-snapshotter/service/resolver"
	"github.com/containerd/stargz-snapshotter/store"
	"github.com/sirupsen/logrus"
)

// fileConfig is the part of stargz's config.toml this daemon reads: the fs options at the top
// level and the [resolver] table.
type fileConfig struct {
	fsconfig.Config
	Resolver resolver.Config `toml:"resolver"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "stargz-store: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	root := flag.String("root", "/var/lib/stargz-store", "state and cache directory")
	configPath := flag.String("config", "", "stargz config.toml (optional)")
	level := flag.String("log-level", "info", "logrus level")
	flag.Parse()
	if flag.NArg() != 1 {
		fail("usage: stargz-store --root DIR [--config FILE] [--log-level LEVEL] MOUNTPOINT")
	}
	mountpoint := flag.Arg(0)

	lvl, err := logrus.ParseLevel(*level)
	if err != nil {
		fail("bad --log-level %q: %v", *level, err)
	}
	logrus.SetLevel(lvl)
	logrus.SetFormatter(&logrus.JSONFormatter{TimestampFormat: log.RFC3339NanoFixed})
	ctx := log.WithLogger(context.Background(), logrus.NewEntry(logrus.StandardLogger()))

	var cfg fileConfig
	if *configPath != "" {
		if _, err := toml.DecodeFile(*configPath, &cfg); err != nil {
			fail("config %s: %v", *configPath, err)
		}
	}
	// The Prometheus namespace registers global collectors; this daemon exports no metrics.
	cfg.Config.NoPrometheus = true
	if err := os.MkdirAll(*root, 0o700); err != nil {
		fail("root %s: %v", *root, err)
	}
	if err := os.MkdirAll(mountpoint, 0o755); err != nil {
		fail("mountpoint %s: %v", mountpoint, err)
	}
	hosts := resolver.RegistryHostsFromConfig(cfg.Resolver, dockerconfig.NewDockerconfigKeychain(ctx))
	manager, err := store.NewLayerManager(ctx, *root, hosts, memorymetadata.NewReader, cfg.Config)
	if err != nil {
		fail("layer manager: %v", err)
	}
	if err := store.Mount(ctx, mountpoint, manager, cfg.Config.Debug); err != nil {
		fail("mount %s: %v", mountpoint, err)
	}
	log.G(ctx).WithField("mountpoint", mountpoint).Info("serving")

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	s := <-sigs
	log.G(ctx).Infof("got %v, unmounting", s)
	if err := syscall.Unmount(mountpoint, 0); err != nil {
		log.G(ctx).WithError(err).Warn("unmount; detaching")
		if err := syscall.Unmount(mountpoint, syscall.MNT_DETACH); err != nil {
			fail("unmount %s: %v", mountpoint, err)
		}
	}
}
