// Command postfix-filter runs beside a provider's Postfix as an after-queue SMTP content filter
// (DESIGN.md section 1; contrib/postfix/README.md): mail carrying "X-PANORAMIX-Mixable: yes" to
// a recipient whose domain is served by a provider in the mixnet's current consensus goes
// through the mixnet, from the filter's own account at its provider; any other mail is
// re-injected into Postfix, without its X-PANORAMIX-Mixable fields. The SMTP side is internal/filter, the header handling
// internal/message, the record of messages already passed on internal/dedup, the configuration
// internal/config; the mixnet side is the client engine, pkg/client.
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/panoramix-mixnet/panoramix/internal/boot"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/version"
	"github.com/panoramix-mixnet/panoramix/postfix-filter/internal/config"
	"github.com/panoramix-mixnet/panoramix/postfix-filter/internal/dedup"
	"github.com/panoramix-mixnet/panoramix/postfix-filter/internal/filter"
)

const name = "postfix-filter"

const usage = `Usage: postfix-filter --config FILE [--gen-key | --print-key]
       postfix-filter --version | --help

postfix-filter is the PANORAMIX content filter for Postfix. Postfix hands it
mail from its submission service (-o content_filter=scan:[127.0.0.1]:10025);
mail with the header "X-PANORAMIX-Mixable: yes" to a domain served by a
provider in the mixnet goes through the mixnet, everything else goes back to
Postfix without that header.
See contrib/postfix/README.md for the Postfix side.

  --config FILE  the configuration (configs/postfix-filter.toml is an example)
  --gen-key      create the account's link key file (refuses to overwrite one)
                 and print its public key, for 'mixctl user add' at the provider
  --print-key    print the public link key of the existing key file
  --version      print the version and exit
  --help, -h     print this help and exit

Without --gen-key or --print-key it runs the filter until SIGINT or SIGTERM.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args and returns the process exit code: 0 on success, 1 when the filter fails,
// 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	cli := boot.NewCLI(name, "", usage)
	genKey := cli.Flags.Bool("gen-key", false, "")
	printKey := cli.Flags.Bool("print-key", false, "")
	cfgPath, code, ok := cli.Parse(args, stdout, stderr)
	switch {
	case !ok:
		return code
	case *genKey && *printKey:
		fmt.Fprintf(stderr, "%s: --gen-key and --print-key exclude each other\n", name)
		return 2
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	switch {
	case *genKey:
		err = generateKey(cfg.Account.LinkKeyFile, stdout)
	case *printKey:
		var k *keys.LinkPrivateKey
		if k, err = keys.LoadLinkKey(cfg.Account.LinkKeyFile); err == nil {
			fmt.Fprintln(stdout, k.Public())
			k.Wipe()
		}
	default:
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		err = serve(ctx, cfg, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

func generateKey(path string, stdout io.Writer) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists; remove it first if you really want a new key (the provider must then learn the new public key)", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	k, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		return err
	}
	defer k.Wipe()
	if err := keys.SaveLinkKey(path, k); err != nil {
		return err
	}
	fmt.Fprintln(stdout, k.Public())
	return nil
}

// serve runs the consensus client, the engine and the SMTP filter until ctx ends.
func serve(ctx context.Context, cfg *config.Config, stderr io.Writer) error {
	level, _ := cfg.LogLevelValue()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	link, err := keys.LoadLinkKey(cfg.Account.LinkKeyFile)
	if err != nil {
		return fmt.Errorf("[account] link_key_file: %w (create it with --gen-key)", err)
	}
	defer link.Wipe()
	pcfg, err := cfg.Directory.ClientConfig(log.With("component", "pki"))
	if err != nil {
		return err
	}
	pc, err := pki.NewClient(pcfg)
	if err != nil {
		return err
	}
	eng, err := client.New(client.Config{DataDir: filepath.Join(cfg.DataDir, "engine"), User: cfg.Account.User, Domain: cfg.Account.Domain,
		LinkKey: link, PKI: pc, Logger: log.With("component", "engine"), RetryBudget: cfg.Engine.RetryBudget,
		AckSlack: cfg.Engine.AckSlack, RetrieveInterval: cfg.Engine.RetrieveInterval, RetrieveBatch: cfg.Engine.RetrieveBatch,
		// Retransmit with backoff past the retry budget for the engine's queue lifetime (its
		// default, like Postfix's maximal_queue_lifetime), so that mail to a provider down but
		// still in the consensus is delayed, not bounced (docs/spec/client.md section 4).
		RetryFor: client.DefaultQueueLifetime})
	if err != nil {
		return err
	}
	defer eng.Close()
	store, err := dedup.Open(filepath.Join(cfg.DataDir, "dedup.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	ln, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen_address: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := filter.New(filter.Config{Metrics: reg, Listener: ln, ReinjectAddress: cfg.ReinjectAddress, Hostname: cfg.Hostname,
		MaxMessageSize: cfg.MaxMessageSize, MaxRecipients: cfg.MaxRecipients, MaxConnections: cfg.MaxConnections,
		Timeout: cfg.Timeout, ConsensusTimeout: cfg.ConsensusTimeout,
		Mixnet: &filter.Engine{Engine: eng, PKI: pc, RequireLink: cfg.RequireLink}, Dedup: store, Logger: log.With("component", "smtp")})
	if err != nil {
		ln.Close()
		return err
	}
	var metricsSrv *http.Server
	if cfg.MetricsAddress != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddress)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics_address: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go metricsSrv.Serve(mln)
		defer metricsSrv.Close()
	}
	log.Info("postfix-filter running", "version", version.Version, "listen", ln.Addr().String(), "reinject", cfg.ReinjectAddress,
		"account", cfg.Account.User+"@"+cfg.Account.Domain)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 5)
	for _, f := range []func(context.Context) error{pc.Run, eng.Run, srv.Run, func(ctx context.Context) error {
		srv.Watch(ctx, eng, statusInterval)
		return nil
	}, func(ctx context.Context) error {
		prune(ctx, store, cfg.DedupRetention, log.With("component", "dedup"))
		return nil
	}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errc <- err
			}
			cancel()
		}()
	}
	wg.Wait()
	log.Info("postfix-filter stopped")
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// statusInterval is how often the engine's finished messages are looked at (logged, bounced
// when they failed, forgotten).
const statusInterval = 5 * time.Second

// prune deletes dedup records past retention, once an hour.
func prune(ctx context.Context, store *dedup.Store, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := store.Prune(time.Now().Add(-retention)); err != nil {
			log.Error("dedup prune", "err", err)
		} else if n > 0 {
			log.Info("dedup records pruned", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
