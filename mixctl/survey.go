package main

import (
	"context"
	"crypto/rand"
	"encoding/csv"
	"errors"
	"fmt"
	"html"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/dp"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/survey"
	"github.com/panoramix-mixnet/panoramix/pkg/survey/store"
)

func init() { addCommand(newSurveyCmd) }

// maxSurveyFile bounds the signed survey and JSON files mixctl reads.
const maxSurveyFile = 1 << 20

func newSurveyCmd() *cobra.Command {
	db := &dbFlags{}
	c := &cobra.Command{
		Use:   "survey",
		Short: "Anonymous surveys: create, open, submit, release statistics",
		Long: `Commands for surveys collected through the mixnet (docs/spec/survey.md).

The collector signs a survey definition:
  mixctl survey keygen --out collector.key
  mixctl survey create --key collector.key --definition survey.json --out survey.bin
The aggregator (the operator of the provider that runs the survey service) opens it
in the provider's survey database, and later closes it and releases statistics with
differentially private noise charged to the survey's privacy budget:
  mixctl survey open survey.bin --collector HEX [--database sqlite --dsn FILE]
  mixctl survey status NAME
  mixctl survey release NAME --kind histogram --question Q --epsilon 0.5
  mixctl survey chart NAME --release SEQ --out chart.svg
  mixctl survey export NAME --out rows.csv
  mixctl survey close NAME
A participant answers through the mixnet (a user account at any provider):
  mixctl survey submit survey.bin --collector HEX --answers answers.json --to DOMAIN ...

The database flags name the provider's [survey] database: for sqlite the file
(data_dir/survey.db), for postgres the connection string.`,
	}
	c.PersistentFlags().StringVar(&db.driver, "database", store.SQLite, `"sqlite" or "postgres"`)
	c.PersistentFlags().StringVar(&db.dsn, "dsn", "", "the SQLite file, or the PostgreSQL connection string")
	c.AddCommand(newSurveyKeygenCmd(), newSurveyCreateCmd(), newSurveyOpenCmd(db), newSurveyCloseCmd(db),
		newSurveyStatusCmd(db), newSurveyReleaseCmd(db), newSurveyExportCmd(db), newSurveyChartCmd(db), newSurveySubmitCmd())
	return c
}

type dbFlags struct{ driver, dsn string }

func (d *dbFlags) open(ctx context.Context) (*store.Store, error) {
	if d.dsn == "" {
		return nil, errors.New("--dsn is required: the survey database (for sqlite, the provider's data_dir/survey.db)")
	}
	return store.Open(ctx, d.driver, d.dsn)
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSurveyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSurveyFile {
		return nil, fmt.Errorf("%s: over %d bytes", path, maxSurveyFile)
	}
	return b, nil
}

// loadSigned reads a signed survey and checks it is signed by the expected collector.
func loadSigned(path, collector string) (*survey.Signed, error) {
	if collector == "" {
		return nil, errors.New("--collector HEX is required: the collector's public key you trust, as 'mixctl survey keygen' printed it")
	}
	want, err := keys.ParseIdentityPublicKey(collector)
	if err != nil {
		return nil, fmt.Errorf("--collector: %w", err)
	}
	b, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	sv, err := survey.ParseSigned(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !sv.Definition.Collector.Equal(want) {
		return nil, fmt.Errorf("%s is signed by %s, not by the collector %s", path, sv.Definition.Collector, want)
	}
	return sv, nil
}

func newSurveyKeygenCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Create a collector's signing key and print its public key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out FILE is required: where to write the private key (mode 0600)")
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s exists: refusing to overwrite a key", out)
			}
			k, err := keys.GenerateIdentityKey(rand.Reader)
			if err != nil {
				return err
			}
			defer k.Wipe()
			if err := keys.SaveIdentityKey(out, k); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.Public())
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "private key file to create")
	return c
}

func newSurveyCreateCmd() *cobra.Command {
	var keyFile, defFile, out string
	c := &cobra.Command{
		Use:   "create --key FILE --definition FILE.json --out FILE",
		Short: "Sign a survey definition (JSON, docs/spec/survey.md section 2.4)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" || defFile == "" || out == "" {
				return errors.New("--key, --definition and --out are all required")
			}
			k, err := keys.LoadIdentityKey(keyFile)
			if err != nil {
				return err
			}
			defer k.Wipe()
			js, err := readLimited(defFile)
			if err != nil {
				return err
			}
			d, err := survey.ParseDefinitionJSON(js, k.Public())
			if err != nil {
				return fmt.Errorf("%s: %w", defFile, err)
			}
			sv, err := survey.Sign(d, k)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, sv.Marshal(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "survey %q id %s signed by %s\n", d.Name, sv.ID(), d.Collector)
			return nil
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "the collector's private key (mixctl survey keygen)")
	c.Flags().StringVar(&defFile, "definition", "", "the survey definition, JSON")
	c.Flags().StringVar(&out, "out", "", "the signed survey file to write")
	return c
}

func newSurveyOpenCmd(db *dbFlags) *cobra.Command {
	var collector string
	c := &cobra.Command{
		Use:   "open FILE --collector HEX",
		Short: "Open a signed survey in the survey database: the service accepts submissions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sv, err := loadSigned(args[0], collector)
			if err != nil {
				return err
			}
			st, err := db.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.OpenSurvey(cmd.Context(), sv); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "survey %q open, budget ε = %s\n", sv.Definition.Name, sv.Definition.Budget)
			return nil
		},
	}
	c.Flags().StringVar(&collector, "collector", "", "the collector's public key the survey must be signed by")
	return c
}

func newSurveyCloseCmd(db *dbFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "close NAME",
		Short: "Close a survey: later submissions are refused",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := db.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.CloseSurvey(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "survey %q closed\n", args[0])
			return nil
		},
	}
}

func newSurveyStatusCmd(db *dbFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show the surveys, or one survey's submissions, budget and releases",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := db.open(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			names := args
			if len(names) == 0 {
				if names, err = st.Surveys(ctx); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			for _, n := range names {
				info, err := st.Survey(ctx, n)
				if err != nil {
					return err
				}
				d := info.Signed.Definition
				state := "open"
				if info.Closed || time.Now().Unix() >= int64(d.Closes) {
					state = "closed"
				}
				fmt.Fprintf(w, "survey %s (%s): %s, %d submissions, ε spent %s of %s (%s remaining)\n",
					n, d.Title, state, info.Submissions, info.Spent, info.Budget, info.Remaining())
				if len(args) == 0 {
					continue
				}
				for _, q := range d.Questions {
					fmt.Fprintf(w, "  question %s: %s", q.ID, q.Type)
					if q.LocalEpsilon != 0 {
						fmt.Fprintf(w, ", locally perturbed at ε = %s", q.LocalEpsilon)
					}
					fmt.Fprintln(w)
				}
				rs, err := st.Releases(ctx, n)
				if err != nil {
					return err
				}
				for _, r := range rs {
					printRelease(w, r)
				}
			}
			return nil
		},
	}
}

func printRelease(w io.Writer, r *store.Release) {
	q := r.Question
	if q != "" {
		q = " " + q
	}
	fmt.Fprintf(w, "  release %d at %s: %s%s, ε = %s\n", r.Seq, r.At.UTC().Format(time.RFC3339), r.Kind, q, r.Epsilon)
	for i, l := range r.Labels {
		v := r.Values[i]
		if r.Decimals != 0 && l == "sum" {
			v = formatScaled(v, r.Decimals)
		}
		fmt.Fprintf(w, "    %-16s %s\n", l, v)
	}
	for i, e := range r.Estimates {
		label := "mean"
		if r.Kind == store.KindHistogram {
			label = r.Labels[i] + " (debiased)"
		}
		fmt.Fprintf(w, "    %-16s %s\n", label, e)
	}
}

// formatScaled prints a decimal integer in units of 10^-decimals.
func formatScaled(v string, decimals uint8) string {
	n, ok := new(big.Int).SetString(v, 10)
	if !ok {
		return v
	}
	r := new(big.Rat).SetFrac(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(decimals)), nil))
	return r.FloatString(int(decimals))
}

func newSurveyReleaseCmd(db *dbFlags) *cobra.Command {
	var kind, question, eps string
	c := &cobra.Command{
		Use:   "release NAME --kind count|histogram|sum|mean [--question Q] --epsilon E",
		Short: "Release a statistic with differentially private noise, charged to the budget",
		Long: `Computes the statistic over the stored submissions, adds discrete Laplace noise
calibrated to ε and the question's bounds (docs/spec/survey.md section 6.2), charges ε
to the survey's budget and records the release. A release that would spend more than
the budget remaining is refused and changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := dp.ParseEpsilon(eps)
			if err != nil {
				return fmt.Errorf("--epsilon: %w", err)
			}
			st, err := db.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			r, err := st.Release(cmd.Context(), args[0], store.Request{Kind: kind, Question: question, Epsilon: e}, dp.NewSampler(nil))
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			printRelease(w, r)
			fmt.Fprintf(w, "ε spent %s, remaining %s\n", r.Spent, r.Remaining)
			return nil
		},
	}
	c.Flags().StringVar(&kind, "kind", "", "count, histogram, sum or mean")
	c.Flags().StringVar(&question, "question", "", "the question id (not for count)")
	c.Flags().StringVar(&eps, "epsilon", "", "ε to spend, e.g. 0.5")
	return c
}

func newSurveyExportCmd(db *dbFlags) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "export NAME [--out FILE.csv]",
		Short: "Export the stored submissions as CSV (raw rows: not differentially private)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := db.open(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			info, err := st.Survey(ctx, args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if out != "" {
				f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			cw := csv.NewWriter(w)
			d := info.Signed.Definition
			header := []string{"submission_id", "received_at"}
			for _, q := range d.Questions {
				header = append(header, q.ID)
			}
			if err := cw.Write(header); err != nil {
				return err
			}
			err = st.Rows(ctx, args[0], func(r *store.Row) error {
				rec := []string{r.ID.String(), r.ReceivedAt.UTC().Format(time.RFC3339)}
				for i, v := range r.Values {
					rec = append(rec, formatAnswer(&d.Questions[i], v))
				}
				return cw.Write(rec)
			})
			if err != nil {
				return err
			}
			cw.Flush()
			return cw.Error()
		},
	}
	c.Flags().StringVar(&out, "out", "", "CSV file to write (mode 0600); standard output when empty")
	return c
}

// formatAnswer prints a stored value the way a person reads it.
func formatAnswer(q *survey.Question, v int64) string {
	switch q.Type {
	case survey.Boolean:
		return strconv.FormatBool(v != 0)
	case survey.Categorical:
		if v >= 0 && v < int64(len(q.Options)) {
			return q.Options[v]
		}
	case survey.Real:
		return survey.FormatFixed(v, q.Decimals)
	}
	return strconv.FormatInt(v, 10)
}

func newSurveyChartCmd(db *dbFlags) *cobra.Command {
	var out string
	var seq int64
	c := &cobra.Command{
		Use:   "chart NAME --release SEQ --out FILE.svg",
		Short: "Draw a released histogram as an SVG bar chart",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" || seq < 1 {
				return errors.New("--release SEQ (from 'mixctl survey status NAME') and --out FILE.svg are required")
			}
			st, err := db.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			rs, err := st.Releases(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.Seq != seq {
					continue
				}
				if r.Kind != store.KindHistogram {
					return fmt.Errorf("release %d is a %s, not a histogram", seq, r.Kind)
				}
				svg, err := histogramSVG(args[0], r)
				if err != nil {
					return err
				}
				return os.WriteFile(out, svg, 0o644)
			}
			return fmt.Errorf("survey %q has no release %d", args[0], seq)
		},
	}
	c.Flags().StringVar(&out, "out", "", "SVG file to write")
	c.Flags().Int64Var(&seq, "release", 0, "the release number")
	return c
}

// histogramSVG draws the released (noisy) counts as bars; negative noisy counts draw as zero
// but are printed as released.
func histogramSVG(name string, r *store.Release) ([]byte, error) {
	const width, height, top, bottom, left = 640, 360, 40, 60, 50
	vals := make([]int64, len(r.Values))
	var maxV int64 = 1
	for i, s := range r.Values {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("release %d: value %q: %w", r.Seq, s, err)
		}
		vals[i] = v
		maxV = max(maxV, v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">%s: %s (release %d, ε = %s, noisy counts)</text>`+"\n", left, html.EscapeString(name), html.EscapeString(r.Question), r.Seq, r.Epsilon)
	plotH := height - top - bottom
	slot := (width - left - 20) / max(1, len(vals))
	for i, v := range vals {
		h := 0
		if v > 0 {
			h = int(int64(plotH) * v / maxV)
		}
		x := left + i*slot + slot/8
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#4a7bb7"/>`+"\n", x, top+plotH-h, slot*3/4, h)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%d</text>`+"\n", x+slot*3/8, top+plotH-h-4, v)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x+slot*3/8, top+plotH+18, html.EscapeString(r.Labels[i]))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top+plotH, width-20, top+plotH)
	b.WriteString("</svg>\n")
	return []byte(b.String()), nil
}

func newSurveySubmitCmd() *cobra.Command {
	var collector, answers, to string
	var sf sendFlags
	c := &cobra.Command{
		Use:   "submit FILE --collector HEX --answers FILE.json --to DOMAIN --directory URL --authority HEX --user NAME --domain DOMAIN --link-key FILE --data-dir DIR",
		Short: "Answer a survey through the mixnet and wait for the service's acknowledgement",
		Long: `Checks the survey's signature, applies the local perturbation the survey asks for
(randomized response, bounded noise), and sends the submission through the mixnet to
the survey service at the provider of --to, as user --user of the provider of --domain
(with its link key). Waits until the service acknowledges that it stored the
submission, or reports why it refused it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sv, err := loadSigned(args[0], collector)
			if err != nil {
				return err
			}
			for flag, v := range sf.required(map[string]string{"--answers": answers, "--to": to}) {
				if v == "" {
					return fmt.Errorf("%s is required (see 'mixctl survey submit --help')", flag)
				}
			}
			js, err := readLimited(answers)
			if err != nil {
				return err
			}
			as, err := survey.ParseAnswersJSON(sv.Definition, js)
			if err != nil {
				return fmt.Errorf("%s: %w", answers, err)
			}
			id, err := survey.NewSubmissionID(rand.Reader)
			if err != nil {
				return err
			}
			sub, err := survey.NewSubmission(sv, id, as, dp.NewSampler(nil))
			if err != nil {
				return err
			}
			data, err := sub.Marshal()
			if err != nil {
				return err
			}
			st, err := sf.send(cmd, client.Destination{Domain: to, Recipient: sv.Definition.Name, Service: survey.ServiceName}, data)
			if err != nil {
				return err
			}
			if st.State == client.StateFailed {
				// The survey service's own words: "survey X is closed" (docs/spec/survey.md section 5).
				return fmt.Errorf("submission refused: %s", refusal(st))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "submission %s stored by survey %q\n", id, sv.Definition.Name)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&collector, "collector", "", "the collector's public key the survey must be signed by")
	f.StringVar(&answers, "answers", "", `answers, JSON: {"question-id": value, ...}`)
	f.StringVar(&to, "to", "", "mail domain of the provider that runs the survey service")
	sf.add(c, "acknowledgement")
	return c
}

// printableText reports whether b, from the network, is UTF-8 without control characters, and
// so safe to print on a terminal.
func printableText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
