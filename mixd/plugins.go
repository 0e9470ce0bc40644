package main

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/config"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/plugin"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
)

// openPlugins creates the service of each [[plugin]] section (docs/spec/plugin.md); the node
// runs their processes (Run) and lists their names in its descriptor.
func openPlugins(cfg *config.Config, reg prometheus.Registerer, log *slog.Logger) ([]service.Service, error) {
	var out []service.Service
	for _, pc := range cfg.Plugins {
		p, err := plugin.New(plugin.Config{Name: pc.Name, Command: pc.Command, Socket: pc.Socket, Env: pc.Env, Dir: cfg.PluginDir(pc.Name),
			MaxInFlight: pc.MaxInFlight, Timeout: pc.Timeout, Geometry: cfg.Geometry(), Logger: log.With("component", "plugin"), Registerer: reg})
		if err != nil {
			return nil, fmt.Errorf("[[plugin]] %s: %w", pc.Name, err)
		}
		out = append(out, p)
	}
	return out, nil
}
