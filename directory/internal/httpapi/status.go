package httpapi

import (
	"fmt"
	"html/template"
	"net/http"

	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// statusPage is the human status page: the schedule state of the current and next epoch, then
// the current document's nodes by role and layer.
var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"layer": func(d *pki.Document, l int) []pki.Node { return d.Layer(uint8(l)) },
	"short": func(s fmt.Stringer) string { return s.String()[:16] },
	"mixLayers": func() []int {
		l := make([]int, pki.Layers)
		for i := range l {
			l[i] = i + 1
		}
		return l
	},
}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>PANORAMIX directory</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}.fail{color:#b00;font-weight:bold}code{font-size:90%}</style>
</head><body>
<h1>PANORAMIX directory authority</h1>
<p>Authority <code>{{.Authority}}</code>, {{len .Peers}} peer(s), threshold {{.Threshold}}, {{.Approved}} approved node(s).</p>
<p>Epoch <b>{{.Epoch}}</b>: {{.EpochStart.UTC.Format "2006-01-02 15:04:05"}} to {{.EpochEnd.UTC.Format "15:04:05"}} UTC (epoch length {{.Parameters.EpochLength}}).</p>
<p>Parameters: {{.Parameters.Geometry}}; &lambda;<sub>P</sub> {{.Parameters.LambdaP}}/s, &lambda;<sub>L</sub> {{.Parameters.LambdaL}}/s, &lambda;<sub>D</sub> {{.Parameters.LambdaD}}/s, &lambda;<sub>M</sub> {{.Parameters.LambdaM}}/s, mean delay {{.Parameters.MeanDelay}}, max delay {{.Parameters.MaxDelay}}.</p>
<table><tr><th>epoch</th><th>own vote</th><th>peer votes</th><th>signatures</th><th>published</th><th>failure</th></tr>
{{range .Epochs}}<tr><td>{{.Epoch}}</td><td>{{if .Voted}}yes{{else}}no{{end}}</td><td>{{.PeerVotes}}</td><td>{{.Signatures}}</td><td>{{if .Published}}yes{{else}}no{{end}}</td><td class="fail">{{.Failure}}</td></tr>
{{end}}</table>
{{with .Document}}{{$d := .}}
<h2>Nodes in epoch {{.Epoch}}: {{len .Nodes}}</h2>
<h3>Providers</h3>
<table><tr><th>identity</th><th>addresses</th><th>domains</th><th>services</th></tr>
{{range layer $d 0}}<tr><td><code>{{short .Identity}}</code></td><td>{{range .Addresses}}{{.}}<br>{{end}}</td><td>{{range .Domains}}{{.}}<br>{{end}}</td><td>{{range .Services}}{{.}} {{end}}</td></tr>
{{end}}</table>
{{range $l := mixLayers}}<h3>Mix layer {{$l}}</h3>
<table><tr><th>identity</th><th>addresses</th></tr>
{{range layer $d $l}}<tr><td><code>{{short .Identity}}</code></td><td>{{range .Addresses}}{{.}}<br>{{end}}</td></tr>
{{end}}</table>
{{end}}{{else}}<p>No published document for the current epoch.</p>{{end}}
</body></html>
`))

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.a.Status()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusPage.Execute(w, st); err != nil {
		s.log.Error("status page", "err", err)
	}
}
