package plan

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Script recomputes the calculator in the browser when an input changes. It mirrors
// Compute; TestScriptMatchesCompute runs both in headless Chromium when it is installed.
// It touches nothing outside the calculator's elements and loads nothing.
const Script = `(function () {
  var form = document.getElementById("plan");
  if (!form) { return; }
  function num(id) { var v = parseFloat(document.getElementById(id).value); return isNaN(v) ? 0 : v; }
  function inst(load, per) { if (!(per > 0) || !isFinite(per)) { return 0; } return Math.max(1, Math.ceil(load / per - 1e-9)); }
  function fmt(v, d) { return v.toLocaleString("en-US", {maximumFractionDigits: d, minimumFractionDigits: 0}); }
  function set(id, text) { document.getElementById(id).textContent = text; }
  function compute() {
    var users = num("p-users"), bhca = num("p-bhca"), hold = num("p-hold"), share = num("p-share") / 100,
        head = num("p-headroom"), crate = num("p-connector-rate"), brate = num("p-broker-rate"),
        bconns = num("p-broker-conns"), reg = num("p-reg-rate");
    var bad = [];
    if (!(users > 0)) { bad.push("users must be > 0"); }
    if (bhca < 0) { bad.push("BHCA must be >= 0"); }
    if (hold < 0) { bad.push("hold must be >= 0"); }
    if (share < 0 || share > 1) { bad.push("registered share must be 0..100%"); }
    if (head < 1) { bad.push("headroom must be >= 1"); }
    set("p-error", bad.join("; "));
    if (bad.length) { return; }
    var perHour = users * bhca, rate = perHour / 3600, conc = rate * hold, conns = users * share;
    var drate = rate * head, dconc = conc * head, dconns = conns * head;
    var nconn = inst(drate, crate), nbr = inst(drate, brate), nbc = inst(dconns, bconns), nb = Math.max(nbr, nbc);
    set("o-attempts", fmt(perHour, 0));
    set("o-rate", fmt(rate, 2)); set("o-drate", fmt(drate, 2));
    set("o-conc", fmt(conc, 0)); set("o-dconc", fmt(dconc, 0));
    set("o-conns", fmt(conns, 0)); set("o-dconns", fmt(dconns, 0));
    set("o-connectors", nconn ? String(nconn) : "not measured");
    set("o-brokers-rate", nbr ? String(nbr) : "not measured");
    set("o-brokers-conns", nbc ? String(nbc) : "not measured");
    set("o-brokers", nb ? String(nb) : "not measured");
    set("o-rereg", reg > 0 && nb > 0 ? fmt(conns / (reg * nb), 1) + " s" : "not measured");
  }
  form.addEventListener("input", compute);
  compute();
})();`

// field is one editable input of the calculator.
type field struct {
	ID, Label, Value, Step, Help string
}

// output is one computed figure.
type output struct {
	ID, Label, Value, Help string
}

var calcTmpl = template.Must(template.New("plan").Parse(`<form id="plan" class="plan" onsubmit="return false">
<div class="plan-grid">
<fieldset><legend>Population (busy hour)</legend>
{{range .Inputs}}<label for="{{.ID}}">{{.Label}}</label><input id="{{.ID}}" type="number" min="0" step="{{.Step}}" value="{{.Value}}"><small>{{.Help}}</small>
{{end}}</fieldset>
<fieldset><legend>Measured capacity per instance</legend>
{{range .Capacity}}<label for="{{.ID}}">{{.Label}}</label><input id="{{.ID}}" type="number" min="0" step="{{.Step}}" value="{{.Value}}"><small>{{.Help}}</small>
{{end}}</fieldset>
</div>
<p id="p-error" class="error" role="alert"></p>
<table class="plan-out"><thead><tr><th>figure</th><th class="num">value</th><th>how</th></tr></thead><tbody>
{{range .Outputs}}<tr><td>{{.Label}}</td><td class="num"><output id="{{.ID}}">{{.Value}}</output></td><td>{{.Help}}</td></tr>
{{end}}</tbody></table>
{{if .Notes}}<ul class="notes">{{range .Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{if .Sources}}<p class="sources">Capacity figures: {{range $i, $s := .Sources}}{{if $i}}; {{end}}{{$s}}{{end}}.</p>{{end}}
</form>`))

// HTML renders the calculator form, filled with r's inputs and results (so the page reads
// right without JavaScript); Script makes it live.
func HTML(r *Result) (template.HTML, error) {
	in, c := r.Inputs, r.Capacity
	data := struct {
		Inputs, Capacity []field
		Outputs          []output
		Notes, Sources   []string
	}{
		Inputs: []field{
			{"p-users", "users", num(in.Users, 0), "1", "population served"},
			{"p-bhca", "BHCA per user", num(in.BHCA, 3), "0.1", "busy-hour call attempts per user"},
			{"p-hold", "mean call duration (s)", num(in.HoldS, 1), "1", "holding time W"},
			{"p-share", "registered share (%)", num(in.RegisteredShare*100, 1), "1", "users connected in the busy hour"},
			{"p-headroom", "headroom factor", num(in.Headroom, 2), "0.05", "1.5 = 50% spare"},
		},
		Capacity: []field{
			{"p-connector-rate", "connector: calls/s", num(c.ConnectorRate, 1), "0.1", "session establishments per connector"},
			{"p-broker-rate", "broker: calls/s", num(c.BrokerRate, 1), "0.1", "session establishments per broker"},
			{"p-broker-conns", "broker: connections", num(c.Connections, 0), "1", "registered endpoints per broker"},
			{"p-reg-rate", "broker: registrations/s", num(c.RegistrationRate, 1), "0.1", "registration rate per broker"},
		},
		Outputs: []output{
			{"o-attempts", "call attempts per busy hour", group(r.AttemptsPerHour, 0), "users × BHCA"},
			{"o-rate", "session establishment rate (calls/s)", group(r.SessionRate, 2), "attempts per hour / 3600"},
			{"o-drate", "design session establishment rate (calls/s)", group(r.DesignSessionRate, 2), "× headroom"},
			{"o-conc", "concurrent sessions", group(r.ConcurrentSessions, 0), "Little's law: L = λ × W (rate × mean duration)"},
			{"o-dconc", "design concurrent sessions", group(r.DesignConcurrentSessions, 0), "× headroom"},
			{"o-conns", "MQTT connections", group(r.Connections, 0), "users × registered share (one per registered endpoint)"},
			{"o-dconns", "design MQTT connections", group(r.DesignConnections, 0), "× headroom"},
			{"o-connectors", "connector instances", count(r.ConnectorInstances), "⌈design rate / connector calls/s⌉"},
			{"o-brokers-rate", "broker instances for the call rate", count(r.BrokerInstancesByRate), "⌈design rate / broker calls/s⌉"},
			{"o-brokers-conns", "broker instances for the connections", count(r.BrokerInstancesByConns), "⌈design connections / broker connections⌉"},
			{"o-brokers", "broker instances", count(r.BrokerInstances), "the larger of the two"},
			{"o-rereg", "re-registration after all brokers restart", rereg(r.ReregistrationS), "connections / (registrations/s × brokers)"},
		},
		Notes:   r.Notes,
		Sources: c.Sources,
	}
	var b bytes.Buffer
	if err := calcTmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("planning calculator: %w", err)
	}
	return template.HTML(b.String()), nil
}

// num formats an input value as the browser's number input reads it.
func num(v float64, digits int) string {
	return strconv.FormatFloat(round(v, digits), 'f', -1, 64)
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// group formats like the script's toLocaleString("en-US", {maximumFractionDigits: d}).
func group(v float64, digits int) string {
	s := strconv.FormatFloat(round(v, digits), 'f', -1, 64)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	ip, fp, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, ch := range ip {
		if i > 0 && (len(ip)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if hasFrac {
		return sign + b.String() + "." + fp
	}
	return sign + b.String()
}

func count(n int) string {
	if n == 0 {
		return "not measured"
	}
	return strconv.Itoa(n)
}

func rereg(s float64) string {
	if s <= 0 {
		return "not measured"
	}
	return group(s, 1) + " s"
}

// Text renders the plan as a plain-text table for the terminal.
func Text(r *Result) string {
	var b strings.Builder
	in := r.Inputs
	fmt.Fprintf(&b, "inputs: %s users, %s BHCA/user, mean call %gs, %g%% registered, headroom %g\n",
		group(in.Users, 0), num(in.BHCA, 3), round(in.HoldS, 1), round(in.RegisteredShare*100, 1), in.Headroom)
	row := func(label, value, how string) { fmt.Fprintf(&b, "  %-44s %14s  %s\n", label, value, how) }
	row("call attempts per busy hour", group(r.AttemptsPerHour, 0), "users x BHCA")
	row("session establishment rate (calls/s)", group(r.SessionRate, 2), "attempts per hour / 3600")
	row("concurrent sessions", group(r.ConcurrentSessions, 0), "Little's law: rate x mean duration")
	row("MQTT connections", group(r.Connections, 0), "users x registered share")
	fmt.Fprintf(&b, "design load (x %g headroom):\n", in.Headroom)
	row("session establishment rate (calls/s)", group(r.DesignSessionRate, 2), "")
	row("concurrent sessions", group(r.DesignConcurrentSessions, 0), "")
	row("MQTT connections", group(r.DesignConnections, 0), "")
	c := r.Capacity
	fmt.Fprintf(&b, "measured capacity per instance: connector %s calls/s, broker %s calls/s, %s connections, %s registrations/s\n",
		orNone(c.ConnectorRate, 1), orNone(c.BrokerRate, 1), orNone(c.Connections, 0), orNone(c.RegistrationRate, 1))
	for _, s := range c.Sources {
		fmt.Fprintf(&b, "  from %s\n", s)
	}
	row("connector instances", count(r.ConnectorInstances), "ceil(design rate / connector calls/s)")
	row("broker instances for the call rate", count(r.BrokerInstancesByRate), "ceil(design rate / broker calls/s)")
	row("broker instances for the connections", count(r.BrokerInstancesByConns), "ceil(design connections / broker connections)")
	row("broker instances", count(r.BrokerInstances), "the larger")
	row("re-registration after all brokers restart", rereg(r.ReregistrationS), "connections / (registrations/s x brokers)")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

func orNone(v float64, digits int) string {
	if v <= 0 {
		return "(not measured)"
	}
	return group(v, digits)
}
