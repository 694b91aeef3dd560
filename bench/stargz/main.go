// containerd-stargz-grpc for hoist's benchmarks (bench/pull_run.sh, issue 13): stargz-snapshotter's
// remote snapshotter served as containerd's snapshots service on a unix socket, built from
// Debian's golang-github-containerd-stargz-snapshotter-dev (0.12), which ships the libraries but
// not the daemon. Build with bench/stargz/build.sh.
//
//	containerd-stargz-grpc --address SOCKET --root DIR [--config FILE] [--log-level LEVEL]
//
// FILE is stargz's own config.toml (fs options, [resolver] mirrors); absent means defaults.
// Credentials come from the docker config ($DOCKER_CONFIG or ~/.docker/config.json). The
// snapshotter unmounts its layers when the process gets SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/BurntSushi/toml"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/log"
	"github.com/containerd/stargz-snapshotter/service"
	"github.com/containerd/stargz-snapshotter/service/keychain/dockerconfig"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "containerd-stargz-grpc: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	address := flag.String("address", "/run/containerd-stargz-grpc/containerd-stargz-grpc.sock", "unix socket to serve on")
	root := flag.String("root", "/var/lib/containerd-stargz-grpc", "state and cache directory")
	configPath := flag.String("config", "", "stargz config.toml (optional)")
	level := flag.String("log-level", "info", "logrus level")
	flag.Parse()
	if flag.NArg() != 0 {
		fail("unexpected argument %q", flag.Arg(0))
	}

	lvl, err := logrus.ParseLevel(*level)
	if err != nil {
		fail("bad --log-level %q: %v", *level, err)
	}
	logrus.SetLevel(lvl)
	logrus.SetFormatter(&logrus.JSONFormatter{TimestampFormat: log.RFC3339NanoFixed})

	var cfg service.Config
	if *configPath != "" {
		if _, err := toml.DecodeFile(*configPath, &cfg); err != nil {
			fail("config %s: %v", *configPath, err)
		}
	}

	ctx := log.WithLogger(context.Background(), logrus.NewEntry(logrus.StandardLogger()))
	if err := os.MkdirAll(*root, 0o700); err != nil {
		fail("root %s: %v", *root, err)
	}
	sn, err := service.NewStargzSnapshotterService(ctx, *root, &cfg,
		service.WithCredsFuncs(dockerconfig.NewDockerconfigKeychain(ctx)))
	if err != nil {
		fail("snapshotter: %v", err)
	}

	if err := os.MkdirAll(filepath.Dir(*address), 0o700); err != nil {
		fail("socket dir: %v", err)
	}
	if err := os.Remove(*address); err != nil && !os.IsNotExist(err) {
		fail("stale socket %s: %v", *address, err)
	}
	lis, err := net.Listen("unix", *address)
	if err != nil {
		fail("listen %s: %v", *address, err)
	}

	srv := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(srv, snapshotservice.FromSnapshotter(sn))

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		log.G(ctx).Infof("got %v, stopping", s)
		srv.Stop()
	}()

	log.G(ctx).WithField("address", *address).Info("serving")
	serveErr := srv.Serve(lis)
	if err := sn.Close(); err != nil {
		log.G(ctx).WithError(err).Warn("closing the snapshotter")
	}
	if serveErr != nil {
		fail("serve: %v", serveErr)
	}
}
