// Package daemon wires the directory authority together: configuration, identity key, store,
// authority schedule, and the public and admin HTTP listeners, with a graceful shutdown when the
// context ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/panoramix-mixnet/panoramix/directory/internal/authority"
	"github.com/panoramix-mixnet/panoramix/directory/internal/config"
	"github.com/panoramix-mixnet/panoramix/directory/internal/httpapi"
	"github.com/panoramix-mixnet/panoramix/directory/internal/store"
	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// DBFile is the store's file name inside data_dir.
const DBFile = "directory.db"

// Daemon is a running directory authority.
type Daemon struct {
	cfg *config.Config
	log *slog.Logger
}

// New returns a Daemon for a validated configuration.
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Daemon{cfg: cfg, log: log}, nil
}

// Run serves until ctx ends, then shuts the listeners down and closes the store.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.cfg
	id, err := keys.LoadIdentityKey(cfg.IdentityKeyFile)
	if err != nil {
		return fmt.Errorf("identity key: %w", err)
	}
	defer id.Wipe()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	token, err := adminauth.LoadOrCreate(cfg.AdminTokenPath())
	if err != nil {
		return fmt.Errorf("admin_token_file: %w", err)
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, DBFile))
	if err != nil {
		return err
	}
	defer st.Close()

	params, _ := cfg.PKIParameters() // validated by New
	var approved []store.Approval
	fileApprovals, _ := cfg.Approvals()
	for _, a := range fileApprovals {
		approved = append(approved, store.Approval{Identity: a.Identity, Approval: a.Approval})
	}
	peerList, _ := cfg.PeerList()
	var peers []authority.Peer
	for _, p := range peerList {
		peers = append(peers, authority.Peer{Identity: p.Identity, URL: p.URL})
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a, err := authority.New(authority.Config{
		Identity:   id,
		Peers:      peers,
		Threshold:  cfg.Threshold,
		Parameters: params,
		Approved:   approved,
		Store:      st,
		Logger:     d.log,
		Registerer: reg,
	})
	if err != nil {
		return err
	}

	pub, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen_address: %w", err)
	}
	adm, err := net.Listen("tcp", cfg.AdminAddress)
	if err != nil {
		pub.Close()
		return fmt.Errorf("admin_address: %w", err)
	}
	servers := []*http.Server{
		{Handler: httpapi.Public(a, reg, d.log), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second},
		// A web page in the operator's browser reaches loopback too: adminauth.Require.
		{Handler: adminauth.Require(token, httpapi.Admin(a, d.log)), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second},
	}
	d.log.Info("directory authority started", "authority", a.Identity(), "listen", pub.Addr().String(), "admin", adm.Addr().String(),
		"peers", len(peers), "threshold", cfg.Threshold, "epoch_length", params.EpochLength)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	for i, l := range []net.Listener{pub, adm} {
		wg.Go(func() {
			if err := servers[i].Serve(l); !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("serving %s: %w", l.Addr(), err)
				cancel()
			}
		})
	}
	wg.Go(func() {
		if err := a.Run(ctx); err != nil {
			errs <- err
			cancel()
		}
	})
	<-ctx.Done()
	shut, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	for _, s := range servers {
		s.Shutdown(shut)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	d.log.Info("directory authority stopped")
	return nil
}
