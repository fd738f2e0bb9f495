package loadreport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/capacity"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/reports"
	"github.com/rtcomm-harness/rtcomm-harness/reports/chart"
	"github.com/rtcomm-harness/rtcomm-harness/reports/plan"
)

// JSON writes the report as indented JSON (maps sorted by encoding/json, no HTML escaping so
// thresholds read "setup.p99<100ms").
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("load report JSON: %w", err)
	}
	return nil
}

// Title is the report's title.
func (r *Report) Title() string {
	switch r.Kind {
	case "capacity":
		return "Capacity report"
	case "merge":
		return "Load report (merged shards)"
	}
	return "Load report"
}

// kv is one row of a key/value table.
type kv struct{ K, V string }

// svg is one chart with its caption.
type svg struct {
	Title, Caption string
	SVG            template.HTML
}

type view struct {
	*Report
	Headline, Why string
	OK            bool
	Warn          bool // OK, but qualified (a lower bound, a provisional knee)
	HasRun        bool // a run's summary is shown (a capacity search may have none)
	Params        []kv
	CapCharts     []svg
	DistCharts    []svg
	TimeCharts    []svg
	Outcomes      []kv
	Reasons       []kv
	Messages      []kv
	Baseline      []kv
	Calculator    template.HTML
}

var tmplFuncs = template.FuncMap{
	"us":    func(v int64) string { return metrics.FormatMicros(v) },
	"level": capacity.FormatLevel,
	"pct":   func(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) },
	"f1":    func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"mean":  func(f float64) string { return metrics.FormatMicros(int64(math.Round(f))) },
	"join":  strings.Join,
}

var bodyTmpl = template.Must(template.New("load").Funcs(tmplFuncs).Parse(`
<div class="banner {{if .Warn}}warn{{else if .OK}}ok{{else}}bad{{end}}">{{.Headline}}<small>{{.Why}}</small></div>
{{if .Run.Warnings}}<h2>Validity warnings</h2><ul class="warnings">{{range .Run.Warnings}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{with .Capacity}}<h2>Capacity: {{.Quantity}}</h2>
{{with .Knee}}<p><b>Knee: {{level .Level}} {{$.Capacity.Unit}}</b> (bound: {{.Bound}}{{if .NextLevel}}; next level tried {{level .NextLevel}}{{end}}). {{.Text}}</p>{{else}}<p class="fail-text">No level passed: no knee.</p>{{end}}
<p class="muted">SLO per step: <code>{{.SLO}}</code>; search status {{.Status}}{{if .Error}}: {{.Error}}{{end}}. Latency of <code>{{.Metric}}</code>, corrected for coordinated omission.</p>
<div class="charts">{{range $.CapCharts}}<figure>{{.SVG}}{{if .Caption}}<figcaption class="muted">{{.Caption}}</figcaption>{{end}}</figure>{{end}}</div>
<table><thead><tr><th class="num">step</th><th>phase</th><th class="num">level ({{.Unit}})</th><th class="num">achieved/s</th><th class="num">goodput/s</th><th class="num">errors</th><th class="num">p50</th><th class="num">p99</th><th class="num">max</th><th>verdict</th></tr></thead><tbody>
{{range .Curve}}<tr><td class="num">{{.Step}}</td><td>{{.Phase}}</td><td class="num">{{level .Level}}</td><td class="num">{{f1 .AchievedRate}}</td><td class="num">{{f1 .Goodput}}</td><td class="num">{{pct .ErrorRatio}}</td><td class="num">{{us .Latency.P50US}}</td><td class="num">{{us .Latency.P99US}}</td><td class="num">{{us .Latency.MaxUS}}</td><td>{{if not .Valid}}<span class="verdict v-not-tested">invalid</span> <small>{{.InvalidReason}}</small>{{else if .Pass}}<span class="verdict v-pass">pass</span>{{else}}<span class="verdict v-fail">fail</span> <small>{{join .Failed "; "}}</small>{{end}}</td></tr>
{{end}}</tbody></table>
{{if $.Run.Step}}<p>The sections below detail {{$.Run.Step}}.</p>{{end}}{{end}}
<h2>Run parameters</h2>
<table class="kv">{{range .Params}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>{{end}}</table>
{{if .Run.ShardRuns}}<h2>Shards</h2>
<p class="muted">Each shard's own window, rates and trouble: a node that started late, fell behind its schedule (late starts) or saw more errors shows here even when the totals look fine. Start offset is from the earliest shard's start.</p>
<table><thead><tr><th>shard</th><th class="num">start offset</th><th class="num">intended/s</th><th class="num">achieved/s</th><th class="num">attempts</th><th class="num">errors</th><th class="num">lost</th><th class="num">late starts</th><th class="num">worst late</th><th class="num">setup p99</th><th class="num">endpoints failed</th><th>validity</th></tr></thead><tbody>
{{range .Run.ShardRuns}}<tr><td class="mono">{{.Shard}}</td><td class="num">{{f1 .StartOffsetMS}} ms</td><td class="num">{{f1 .IntendedRate}}</td><td class="num">{{f1 .AchievedRate}}</td><td class="num">{{.Attempts}}</td><td class="num">{{.Errors}}</td><td class="num">{{.Lost}}</td><td class="num">{{.LateStarts}}</td><td class="num">{{us .MaxLateLagUS}}</td><td class="num">{{us .SetupP99US}}</td><td class="num">{{.EndpointsFailed}}</td><td>{{if .Invalid}}<span class="verdict v-fail">invalid</span> <small>{{join .Invalid "; "}}</small>{{else}}valid{{end}}</td></tr>
{{end}}</tbody></table>
{{end}}{{if .Run.SLO}}<h2>Thresholds</h2>
<table><thead><tr><th>threshold</th><th>measured</th><th>verdict</th></tr></thead><tbody>
{{range .Run.SLO}}<tr><td class="mono">{{.Threshold}}</td><td>{{.Measured}}{{if .Note}} <small>({{.Note}})</small>{{end}}</td><td>{{if .Pass}}<span class="verdict v-pass">pass</span>{{else}}<span class="verdict v-fail">fail</span>{{end}}</td></tr>
{{end}}</tbody></table>{{end}}
{{if .Metrics}}<h2>Latency percentiles</h2>
<p class="muted">Corrected: from the intended start of each operation (what users see; includes any generator delay). Uncorrected: from the actual send. <code>setup</code> holds successful calls only; calls that failed or timed out have their time until that outcome in <code>setup_failed</code> (rejected and unanswered calls, the simulated user's choice, are in neither).</p>
<table><thead><tr><th>metric</th><th class="num">count</th><th class="num">p50</th><th class="num">p90</th><th class="num">p99</th><th class="num">p99.9</th><th class="num">max</th><th class="num">mean</th><th class="num">uncorrected p99</th><th class="num">uncorrected max</th></tr></thead><tbody>
{{range .Metrics}}<tr><td class="mono">{{.Name}}</td><td class="num">{{.Corrected.Count}}</td><td class="num">{{us .Corrected.P50US}}</td><td class="num">{{us .Corrected.P90US}}</td><td class="num">{{us .Corrected.P99US}}</td><td class="num">{{us .Corrected.P999US}}</td><td class="num">{{us .Corrected.MaxUS}}</td><td class="num">{{mean .Corrected.MeanUS}}</td><td class="num">{{us .Uncorrected.P99US}}</td><td class="num">{{us .Uncorrected.MaxUS}}</td></tr>
{{end}}</tbody></table>
<div class="charts">{{range .DistCharts}}<figure>{{.SVG}}</figure>{{end}}</div>{{end}}
{{if .TimeCharts}}<h2>Over time</h2>
<div class="charts">{{range .TimeCharts}}<figure>{{.SVG}}{{if .Caption}}<figcaption class="muted">{{.Caption}}</figcaption>{{end}}</figure>{{end}}</div>{{end}}
{{if .HasRun}}<h2>Outcomes</h2>
<table class="kv">{{range .Outcomes}}<tr><th>{{.K}}</th><td class="num">{{.V}}</td></tr>{{end}}</table>
{{if .Reasons}}<h3>Reasons</h3><table><thead><tr><th>outcome: reason</th><th class="num">calls</th></tr></thead><tbody>{{range .Reasons}}<tr><td>{{.K}}</td><td class="num">{{.V}}</td></tr>{{end}}</tbody></table>{{end}}
<h3>Messages and generator</h3>
<table class="kv">{{range .Messages}}<tr><th>{{.K}}</th><td class="num">{{.V}}</td></tr>{{end}}</table>{{end}}
{{with .Check}}<h2>Protocol check</h2>
<p>The passive checker ({{if eq .Mode "hook"}}inside the embedded broker: every inbound publish, with the client that sent it{{else}}subscribed to the topic path: what the broker delivered to it{{end}}) judged {{.Observed}} publishes against the requirement catalog: <b>{{.Findings}} finding(s)</b>. Verdicts, JUnit and every finding with its messages: <code>{{.Bundle}}/</code>.</p>
{{if .ByRequirement}}<table><thead><tr><th>requirement</th><th>blamed participant</th><th class="num">findings</th><th class="num">evidence messages</th><th>first</th><th>example</th></tr></thead><tbody>
{{range .ByRequirement}}<tr><td class="mono">{{.Requirement}}</td><td class="mono">{{.Participant}}</td><td class="num">{{.Findings}}</td><td class="num">{{.Evidence}}</td><td>{{.First.UTC.Format "15:04:05.000"}}</td><td><small>{{.Example}}</small></td></tr>
{{end}}</tbody></table>{{end}}{{end}}{{if .Baseline}}<h2>Baseline: raw MQTT relay in the same run</h2>
<table class="kv">{{range .Baseline}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>{{end}}</table>{{end}}
<h2>Planning calculator</h2>
<p>Edit the population; the measured capacity comes from this report{{if not .Plan.Capacity.Sources}} (none measured: enter figures from a capacity run){{end}}. Session establishment rate = users × BHCA / 3600; concurrent sessions by Little's law = rate × mean call duration; one MQTT connection per registered endpoint; instances = ⌈design load / capacity per instance⌉.</p>
{{.Calculator}}
`))

// HTML writes the self-contained HTML report.
func (r *Report) HTML(w io.Writer) error {
	v, err := r.view()
	if err != nil {
		return err
	}
	var body bytes.Buffer
	if err := bodyTmpl.Execute(&body, v); err != nil {
		return fmt.Errorf("load report: %w", err)
	}
	sub := strings.Join(r.Source, ", ")
	if !r.Run.Start.IsZero() {
		sub = fmt.Sprintf("%s · %s · %s", r.Run.Params.Target, r.Run.Start.UTC().Format("2006-01-02 15:04:05 UTC"), sub)
	}
	return reports.Page{Title: r.Title(), Subtitle: sub, Body: template.HTML(body.String()), Script: plan.Script}.Write(w)
}

func (r *Report) view() (*view, error) {
	v := &view{Report: r, HasRun: r.summary != nil}
	v.headline()
	v.params()
	v.outcomes()
	v.baseline()
	var err error
	if v.CapCharts, err = r.capacityCharts(); err != nil {
		return nil, err
	}
	if v.DistCharts, err = r.distributionCharts(); err != nil {
		return nil, err
	}
	if v.TimeCharts, err = r.timeCharts(); err != nil {
		return nil, err
	}
	if v.Calculator, err = plan.HTML(r.Plan); err != nil {
		return nil, err
	}
	return v, nil
}

func (v *view) headline() {
	r := v.Report
	switch {
	case r.Capacity != nil && r.Capacity.Knee != nil:
		k := r.Capacity.Knee
		v.Why = k.Text
		switch k.Bound {
		case capacity.BoundSLO:
			v.OK, v.Headline = true, fmt.Sprintf("Knee: %s %s within the SLO", capacity.FormatLevel(k.Level), r.Capacity.Unit)
		case capacity.BoundMax, capacity.BoundGenerator:
			// A lower bound: the target held everything offered; something else stopped the search.
			v.OK, v.Warn = true, true
			v.Headline = fmt.Sprintf("Capacity at least %s %s within the SLO (lower bound: %s)", capacity.FormatLevel(k.Level), r.Capacity.Unit,
				map[string]string{capacity.BoundMax: "the configured maximum passed", capacity.BoundGenerator: "the load generator could not offer more"}[k.Bound])
		default:
			v.Warn, v.OK = true, true
			v.Headline = fmt.Sprintf("Provisional knee: %s %s (search %s)", capacity.FormatLevel(k.Level), r.Capacity.Unit, k.Bound)
		}
	case r.Capacity != nil:
		v.Headline, v.Why = "No knee: no level passed", fmt.Sprintf("Search status %s. SLO %s.", r.Capacity.Status, r.Capacity.SLO)
		if r.Capacity.Error != "" {
			v.Why += " Error: " + r.Capacity.Error
		}
	case len(r.Run.Invalid) > 0:
		v.Headline, v.Why = "Invalid run: not a measurement", "Why: "+strings.Join(r.Run.Invalid, "; ")+". Its SLO verdicts say nothing about the target."
	case r.Run.Params.SLO == "":
		v.OK = len(r.Run.Warnings) == 0
		v.Headline, v.Why = "No SLO given", "The run was not judged against thresholds (--slo)."
	case r.Run.SLOPassed:
		v.OK = true
		v.Headline, v.Why = "SLO met", fmt.Sprintf("Every clause of %s held.", r.Run.Params.SLO)
	default:
		var failed []string
		for _, s := range r.Run.SLO {
			if !s.Pass {
				failed = append(failed, fmt.Sprintf("%s (measured %s)", s.Threshold, s.Measured))
			}
		}
		v.Headline, v.Why = "SLO not met", "Failed: "+strings.Join(failed, "; ")+"."
	}
	if len(r.Run.Warnings) > 0 {
		v.Why += fmt.Sprintf(" %d validity warning(s) below: read them before trusting the numbers.", len(r.Run.Warnings))
		v.Warn = v.OK // met, but the measurement is qualified
	}
}

func (v *view) params() {
	r := v.Report
	p := r.Run.Params
	add := func(k, val string) {
		if val != "" {
			v.Params = append(v.Params, kv{k, val})
		}
	}
	add("target", p.Target)
	add("harness version", p.HarnessVersion)
	if r.summary == nil {
		return
	}
	add("intended rate", fmt.Sprintf("%g calls/s", p.Rate))
	add("achieved rate", fmt.Sprintf("%.2f calls/s (goodput %.2f/s)", r.Run.AchievedRate, r.Run.Goodput))
	add("load window", fmt.Sprintf("%s .. %s (%.1f s of %s intended)", r.Run.Start.UTC().Format("2006-01-02 15:04:05"),
		r.Run.End.UTC().Format("15:04:05 UTC"), r.Run.DurationS, time.Duration(p.Duration)))
	add("pacer", p.Pacer)
	if p.Seed != 0 {
		add("seed", fmt.Sprint(p.Seed))
	}
	add("shard", p.Shard)
	if len(r.Run.Shards) > 0 {
		add("merged shards", strings.Join(r.Run.Shards, ", "))
	}
	if p.LateThreshold != 0 {
		add("late threshold", time.Duration(p.LateThreshold).String())
	}
	add("SLO", p.SLO)
	if r.Run.Interrupted {
		add("interrupted", "yes")
	}
	if r.Run.Rebuilt {
		add("rebuilt", "yes: summary.json was missing, rebuilt from intervals.hlog")
	}
	keys := make([]string, 0, len(p.Extra))
	for k := range p.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// The free-form extras (call model, pool) in one compact row: they qualify the run but
	// would push the results off the first screen as rows of their own.
	var extra []string
	for _, k := range keys {
		b, err := json.Marshal(p.Extra[k]) // maps inside are sorted by encoding/json
		if err != nil {
			b = []byte(fmt.Sprint(p.Extra[k]))
		}
		extra = append(extra, k+"="+strings.Trim(string(b), `"`))
	}
	add("other parameters", strings.Join(extra, " · "))
}

func (v *view) outcomes() {
	t := v.Report.Tally
	n := func(x uint64) string { return fmt.Sprint(x) }
	v.Outcomes = []kv{{"attempts", n(t.Attempts)}}
	for i := 0; i < metrics.NumOutcomes; i++ {
		v.Outcomes = append(v.Outcomes, kv{metrics.Outcome(i).String(), n(t.Outcomes[i])})
	}
	v.Outcomes = append(v.Outcomes, kv{"completed (all but aborted)", n(t.Completed())}, kv{"errors", n(t.Errors())})
	if er, ok := t.ErrorRatio(); ok {
		v.Outcomes = append(v.Outcomes, kv{"error ratio", fmt.Sprintf("%.3f%%", 100*er)})
	}
	type rc struct {
		k string
		n uint64
	}
	var rs []rc
	for k, c := range t.Reasons {
		rs = append(rs, rc{k, c})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].n > rs[j].n || (rs[i].n == rs[j].n && rs[i].k < rs[j].k) })
	for _, x := range rs {
		v.Reasons = append(v.Reasons, kv{x.k, n(x.n)})
	}
	v.Messages = []kv{{"checked messages sent", n(t.Sent)}, {"delivered intact", n(t.Delivered)},
		{"lost (not delivered intact within the loss timeout)", n(t.Lost)}, {"in flight at the end", n(t.InFlight)},
		{"duplicated (extra copies)", n(t.Duplicated)}, {"misrouted (wrong inbox or sender level)", n(t.Misrouted)},
		{"altered (content or transID changed)", n(t.Altered)}, {"unexpected (caused by nothing of ours)", n(t.Unexpected)},
		{"out of order (ICE candidates)", n(t.OutOfOrder)}, {"malformed", n(t.Malformed)},
		{"late starts", n(t.LateStarts)}, {"worst lateness", t.MaxLateLag().String()}, {"clamped latencies", n(t.Clamped)}}
	if lt, ok := v.Report.Run.Params.Extra["loss_timeout"].(string); ok {
		v.Messages = append(v.Messages, kv{"loss timeout", lt})
	}
}

func (v *view) baseline() {
	b := v.Report.Baseline
	if b == nil {
		return
	}
	v.Baseline = []kv{
		{"kind", b.Kind},
		{"raw messages relayed", fmt.Sprintf("%d published, %d delivered, %d lost, %d bytes", b.Messages, b.Delivered, b.Lost, b.Bytes)},
		{"raw relay rate", fmt.Sprintf("%.1f messages/s over %.2f s", b.Rate, b.DurationS)},
		{"raw one-way latency", fmt.Sprintf("p50 %s, p99 %s, max %s (%d values)", metrics.FormatMicros(b.Latency.P50US),
			metrics.FormatMicros(b.Latency.P99US), metrics.FormatMicros(b.Latency.MaxUS), b.Latency.Count)},
		{"rtcomm messages received", fmt.Sprintf("%d (%d bytes), %.1f messages/s", b.RtcommMessages, b.RtcommBytes, b.RtcommRate)},
		{"rtcomm rate / raw rate", fmt.Sprintf("%.3f", b.Ratio)},
	}
	if b.Note != "" {
		v.Baseline = append(v.Baseline, kv{"note", b.Note})
	}
}

// ms converts microseconds to milliseconds for chart axes.
func ms(us int64) float64 { return float64(us) / 1000 }

func (r *Report) capacityCharts() ([]svg, error) {
	c := r.Capacity
	if c == nil || len(c.Curve) == 0 {
		return nil, nil
	}
	var lv, p50, p99, errs, ach, good []float64
	var ilv, ip99 []float64
	for _, p := range c.Curve {
		if !p.Valid {
			ilv, ip99 = append(ilv, p.Level), append(ip99, ms(p.Latency.P99US))
			continue
		}
		lv = append(lv, p.Level)
		p50, p99 = append(p50, ms(p.Latency.P50US)), append(p99, ms(p.Latency.P99US))
		errs = append(errs, 100*p.ErrorRatio)
		ach, good = append(ach, p.AchievedRate), append(good, p.Goodput)
	}
	var marks []chart.Mark
	if c.Knee != nil {
		marks = append(marks, chart.Mark{X: c.Knee.Level, Label: "knee " + capacity.FormatLevel(c.Knee.Level)})
	}
	x := fmt.Sprintf("offered %s (%s)", c.Quantity, c.Unit)
	lat := []chart.Series{{Name: c.Metric + " p50", X: lv, Y: p50, Points: true}, {Name: c.Metric + " p99", X: lv, Y: p99, Points: true, Dashed: true}}
	if len(ilv) > 0 {
		lat = append(lat, chart.Series{Name: "p99 of invalid steps", X: ilv, Y: ip99, NoLine: true})
	}
	var out []svg
	b, err := chart.Lines("Latency vs offered load", x, "latency (ms)", lat, marks)
	if err != nil {
		return nil, err
	}
	out = append(out, svg{Title: "latency", SVG: template.HTML(b), Caption: "Valid steps only, unless labelled invalid (the generator fell behind: not the target's failure)."})
	if len(lv) > 0 {
		if b, err = chart.Lines("Errors vs offered load", x, "errors (% of completed calls)",
			[]chart.Series{{Name: "errors %", X: lv, Y: errs, Points: true}}, marks); err != nil {
			return nil, err
		}
		out = append(out, svg{Title: "errors", SVG: template.HTML(b)})
		if c.Mode != string(capacity.Endpoints) {
			if b, err = chart.Lines("Throughput vs offered load", x, "per second",
				[]chart.Series{{Name: "offered", X: lv, Y: lv, Dashed: true}, {Name: "achieved (attempts/s)", X: lv, Y: ach, Points: true},
					{Name: "goodput (successes/s)", X: lv, Y: good, Points: true}}, marks); err != nil {
				return nil, err
			}
			out = append(out, svg{Title: "throughput", SVG: template.HTML(b)})
		}
	}
	return out, nil
}

// distPoints samples a histogram along the log percentile axis: ten points per decade of
// 1/(1-p), up to the rank of the last value, then the maximum.
func distPoints(h *hdrhistogram.Histogram) []chart.PercentilePoint {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	var pts []chart.PercentilePoint
	for k := 0; ; k++ {
		x := math.Pow(10, float64(k)/10)
		if x >= float64(n) {
			break
		}
		p := 100 * (1 - 1/x)
		pts = append(pts, chart.PercentilePoint{Percentile: p, Value: ms(h.ValueAtQuantile(p))})
	}
	last := 100 * (1 - 1/float64(n))
	if n == 1 {
		last = 0
	}
	return append(pts, chart.PercentilePoint{Percentile: last, Value: ms(h.Max())})
}

func (r *Report) distributionCharts() ([]svg, error) {
	var out []svg
	for _, m := range r.Metrics {
		var ds []chart.Distribution
		for _, corrected := range []bool{true, false} {
			h, err := r.histogram(m.Name, corrected)
			if err != nil {
				return nil, fmt.Errorf("load report: %w", err)
			}
			name := "corrected"
			if !corrected {
				name = "uncorrected"
			}
			if pts := distPoints(h); len(pts) > 0 {
				ds = append(ds, chart.Distribution{Name: name, Points: pts})
			}
		}
		if len(ds) == 0 {
			continue
		}
		b, err := chart.Percentiles(fmt.Sprintf("%s latency by percentile (%d values)", m.Name, m.Corrected.Count), "latency (ms)", ds)
		if err != nil {
			return nil, err
		}
		out = append(out, svg{Title: m.Name, SVG: template.HTML(b)})
	}
	return out, nil
}

// primary is the metric the over-time chart follows: the capacity metric, else setup, else
// the first with values.
func (r *Report) primary() string {
	want := "setup"
	if r.Capacity != nil {
		want = r.Capacity.Metric
	}
	for _, m := range r.Metrics {
		if m.Name == want {
			return want
		}
	}
	if len(r.Metrics) > 0 {
		return r.Metrics[0].Name
	}
	return ""
}

func (r *Report) timeCharts() ([]svg, error) {
	if len(r.Timeline) < 2 {
		return nil, nil
	}
	m := r.primary()
	width := r.Timeline[1].T - r.Timeline[0].T
	var t, p50, p99, mx, tl, done, att, errs []float64
	hasCounts := false
	for _, iv := range r.Timeline {
		if s, ok := iv.Metrics[m]; ok {
			t = append(t, iv.T)
			p50, p99, mx = append(p50, ms(s.P50US)), append(p99, ms(s.P99US)), append(mx, ms(s.MaxUS))
		}
		tl = append(tl, iv.T)
		done = append(done, float64(iv.Metrics[m].Count)/width)
		if iv.Attempts != nil {
			hasCounts = true
		}
		att = append(att, float64(deref(iv.Attempts))/width)
		errs = append(errs, float64(deref(iv.Errors))/width)
	}
	var out []svg
	if len(t) > 0 {
		b, err := chart.Lines(m+" latency over time", "seconds from start", "latency (ms)",
			[]chart.Series{{Name: "p50", X: t, Y: p50}, {Name: "p99", X: t, Y: p99, Dashed: true}, {Name: "max", X: t, Y: mx}}, windowEnd(r.Run.DurationS, t))
		if err != nil {
			return nil, err
		}
		out = append(out, svg{Title: "latency over time", SVG: template.HTML(b),
			Caption: fmt.Sprintf("Corrected latency per %gs interval, from intervals.hlog.", width)})
	}
	ss := []chart.Series{{Name: m + " completed/s", X: tl, Y: done}}
	if hasCounts {
		ss = append(ss, chart.Series{Name: "call attempts/s", X: tl, Y: att, Dashed: true}, chart.Series{Name: "errors/s", X: tl, Y: errs})
	}
	// Values recorded after the load window are calls draining (set up, torn down late).
	b, err := chart.Lines("Throughput over time", "seconds from start", "per second", ss, windowEnd(r.Run.DurationS, tl))
	if err != nil {
		return nil, err
	}
	return append(out, svg{Title: "throughput over time", SVG: template.HTML(b)}), nil
}

func deref(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// windowEnd marks the end of the load window when the series run past it (draining).
func windowEnd(d float64, t []float64) []chart.Mark {
	if d > 0 && len(t) > 0 && t[len(t)-1] > d {
		return []chart.Mark{{X: d, Label: "end of load window"}}
	}
	return nil
}
