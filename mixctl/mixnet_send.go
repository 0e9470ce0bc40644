package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// sendFlags are the flags of a command that sends one message through the mixnet as a user of
// a provider (`mixctl vote cast`, `mixctl survey submit`) and waits for the service's answer.
type sendFlags struct {
	dirURL, authority, user, domain, linkKey, dataDir string
	epoch, timeout                                    time.Duration
	answer                                            string // what the command waits for, for help and errors
}

// add declares the flags on c; answer names what the command waits for ("acknowledgement").
func (s *sendFlags) add(c *cobra.Command, answer string) {
	s.answer = answer
	f := c.Flags()
	f.StringVar(&s.dirURL, "directory", "", "directory authority URL")
	f.StringVar(&s.authority, "authority", "", "directory authority identity key")
	f.DurationVar(&s.epoch, "epoch-length", pki.DefaultParameters().EpochLength, "the network's epoch length")
	f.StringVar(&s.user, "user", "", "your user name at your provider")
	f.StringVar(&s.domain, "domain", "", "your provider's mail domain")
	f.StringVar(&s.linkKey, "link-key", "", "your link private key file")
	f.StringVar(&s.dataDir, "data-dir", "", "the client engine's state directory")
	f.DurationVar(&s.timeout, "timeout", 5*time.Minute, "how long to wait for the "+answer)
}

// required adds the string flags that must be given to flags (name -> value) and returns it.
func (s *sendFlags) required(flags map[string]string) map[string]string {
	for name, v := range map[string]string{"--directory": s.dirURL, "--authority": s.authority, "--user": s.user,
		"--domain": s.domain, "--link-key": s.linkKey, "--data-dir": s.dataDir} {
		flags[name] = v
	}
	return flags
}

// send queues data for dst in the user's client engine (its state in --data-dir), runs the
// engine until the message is delivered or failed, and returns that status. When no answer comes
// within --timeout the message stays queued in --data-dir, and the error says so.
func (s *sendFlags) send(cmd *cobra.Command, dst client.Destination, data []byte) (client.Status, error) {
	var none client.Status
	auth, err := keys.ParseIdentityPublicKey(s.authority)
	if err != nil {
		return none, fmt.Errorf("--authority: %w", err)
	}
	lk, err := keys.LoadLinkKey(s.linkKey)
	if err != nil {
		return none, err
	}
	defer lk.Wipe()
	ctx, cancel := context.WithTimeout(cmd.Context(), s.timeout)
	defer cancel()
	pc, err := pki.NewClient(pki.ClientConfig{URLs: []string{s.dirURL}, Authorities: []keys.IdentityPublicKey{auth}, Threshold: 1, EpochLength: s.epoch})
	if err != nil {
		return none, err
	}
	go pc.Run(ctx)
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := client.New(client.Config{DataDir: s.dataDir, User: s.user, Domain: s.domain, LinkKey: lk, PKI: pc, Logger: log})
	if err != nil {
		return none, err
	}
	defer e.Close()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	mid, err := e.Send(ctx, dst, data)
	if err != nil {
		return none, err
	}
	for {
		st, err := e.Status(mid)
		if err != nil {
			return none, err
		}
		if st.State == client.StateDelivered || st.State == client.StateFailed {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return none, fmt.Errorf("no %s within %v (the message stays queued in %s; run again with the same --data-dir to keep trying)", s.answer, s.timeout, s.dataDir)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// refusal is why a failed message failed: the service's own words when it answered with
// printable text ("survey X is closed"), else the engine's reason.
func refusal(st client.Status) string {
	if len(st.Answer) > 0 && printableText(st.Answer) {
		return string(st.Answer)
	}
	return st.Reason
}
