package main

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/config"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/vote"
)

// openVote creates the ballot box service of the [vote] section on its box directory, whose
// metrics go to reg; nil when the section does not enable it.
func openVote(cfg *config.Config, reg prometheus.Registerer, log *slog.Logger) (*vote.Service, error) {
	if !cfg.Vote.Enabled {
		return nil, nil
	}
	svc, err := vote.New(vote.Config{Dir: cfg.VoteDir(), Geometry: cfg.Geometry(), Logger: log.With("component", "vote"), Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("[vote]: %w", err)
	}
	log.Info("ballot box", "dir", cfg.VoteDir(), "box_key", svc.BoxKey())
	return svc, nil
}
