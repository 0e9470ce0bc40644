package main

import (
	"fmt"
	"log/slog"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/config"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/vote"
)

// openVote creates the ballot box service of the [vote] section on its box directory; nil
// when the section does not enable it.
func openVote(cfg *config.Config, log *slog.Logger) (*vote.Service, error) {
	if !cfg.Vote.Enabled {
		return nil, nil
	}
	svc, err := vote.New(vote.Config{Dir: cfg.VoteDir(), Geometry: cfg.Geometry(), Logger: log.With("component", "vote")})
	if err != nil {
		return nil, fmt.Errorf("[vote]: %w", err)
	}
	log.Info("ballot box", "dir", cfg.VoteDir(), "box_key", svc.BoxKey())
	return svc, nil
}
