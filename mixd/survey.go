package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/config"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/survey"
	"github.com/panoramix-mixnet/panoramix/pkg/survey/store"
)

// surveys is a provider's survey side: the store and the service that writes to it.
type surveys struct {
	store   *store.Store
	service *survey.Service
}

// openSurvey opens the survey database of the [survey] section and the service on it, whose
// metrics go to reg; nil when the section disables it.
func openSurvey(ctx context.Context, cfg *config.Config, reg prometheus.Registerer, log *slog.Logger) (*surveys, error) {
	if !cfg.Survey.Enabled {
		return nil, nil
	}
	dsn := cfg.Survey.DSN
	if cfg.Survey.Database == store.SQLite {
		dsn = cfg.SurveyPath()
	}
	st, err := store.Open(ctx, cfg.Survey.Database, dsn)
	if err != nil {
		return nil, fmt.Errorf("[survey]: %w", err)
	}
	svc, err := survey.New(survey.Config{Store: st, Geometry: cfg.Geometry(), Logger: log.With("component", "survey"), Registerer: reg})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("[survey]: %w", err)
	}
	return &surveys{store: st, service: svc}, nil
}

func (s *surveys) close() { s.store.Close() }
