package framework

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios/verdict"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// Mode says what the harness runs itself and what it certifies.
type Mode string

// The three kinds of target.
const (
	// ModeEmbedded: the harness starts the reference broker and connector in-process.
	ModeEmbedded Mode = "embedded"
	// ModeBroker: an external broker; the harness attaches the reference connector (certifies a broker).
	ModeBroker Mode = "broker"
	// ModeConnector: an external broker with an external connector attached (certifies a connector).
	ModeConnector Mode = "connector"
)

// Profile is the reading of the protocol a target is held to (PROTOCOL.md, "Known
// differences"); spec's catalog defines the profiles.
type Profile = spec.Profile

// Profiles.
const (
	// ProfileStrict holds the target to the written specification.
	ProfileStrict = spec.ProfileStrict
	// ProfileClient holds the target to what the official rtcomm.js client needs.
	ProfileClient = spec.ProfileClient
)

// Feature is an optional capability a target may claim (spec.Feature: the catalog is the
// only list). Requirements that belong to an unclaimed feature get the verdict "not
// claimed", never "fail"; NewEnv skips a scenario naming one.
type Feature = spec.Feature

// Optional features, as spec names them.
const (
	FeatureWebSocket  = spec.FeatureWebSocket
	FeatureSecure     = spec.FeatureSecure
	FeatureQueues     = spec.FeatureQueues
	Feature3PCC       = spec.Feature3PCC
	FeatureEvents     = spec.FeatureEvents
	FeatureSchemes    = spec.FeatureSchemes
	FeatureSharedSubs = spec.FeatureShared
)

const (
	defaultQuietWindow            = 400 * time.Millisecond
	defaultReplyTimeout           = 5 * time.Second
	defaultSpecTimeout            = 60 * time.Second
	largePayloadThreshold         = 64 * 1024
	maxDeclarationFileSize        = 1 << 20
	minSecureIdentities           = 3
	defaultEmbeddedMaxPayloadByte = 1 << 20
)

// Duration is a time.Duration written as text ("5s", "400ms") in YAML and JSON.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as Go duration text.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// BrokerURLs are where the target's MQTT broker listens.
type BrokerURLs struct {
	TCP string `yaml:"tcp,omitempty" json:"tcp,omitempty"` // tcp://host:port (or ssl://)
	WS  string `yaml:"ws,omitempty" json:"ws,omitempty"`   // ws://host:port/mqtt (or wss://)
	// Username and Password, if the broker wants them from every client (non-secure specs).
	Username string `yaml:"username,omitempty" json:"username,omitempty"`
	Password string `yaml:"password,omitempty" json:"password,omitempty"`
}

// Identity is one set of credentials whose username the secured broker binds to an endpoint ID.
type Identity struct {
	ID       string `yaml:"id" json:"id"`
	Username string `yaml:"username,omitempty" json:"username,omitempty"` // default: ID
	Password string `yaml:"password" json:"password"`
}

// Secure describes the secured listener of a target that claims the secure feature.
type Secure struct {
	// TCP/WS of the secured listener; empty means the broker's.
	TCP string `yaml:"tcp,omitempty" json:"tcp,omitempty"`
	WS  string `yaml:"ws,omitempty" json:"ws,omitempty"`
	// TopicPath the secured broker's ACLs are written for; default the declaration's.
	TopicPath string `yaml:"topicPath,omitempty" json:"topicPath,omitempty"`
	// Connector is what the harness's reference connector authenticates as (modes embedded and broker).
	Connector *Identity `yaml:"connector,omitempty" json:"connector,omitempty"`
	// Identities are endpoint credentials the harness may use; at least three.
	Identities []Identity `yaml:"identities,omitempty" json:"identities,omitempty"`
	// CallControllers are IDs of Identities (after the first three) the deployment lets
	// place third-party calls; the harness's connector is configured with them (ID-015).
	CallControllers []string `yaml:"callControllers,omitempty" json:"callControllers,omitempty"`
	// TLS (mode embedded): the secured listener serves ssl:// and wss:// with a self-signed
	// certificate the harness generates for 127.0.0.1 and trusts.
	TLS bool `yaml:"tls,omitempty" json:"tls,omitempty"`
	// CAFile (modes broker and connector): PEM certificates the harness trusts for ssl:// and
	// wss:// URLs; empty means the system roots.
	CAFile string `yaml:"caFile,omitempty" json:"caFile,omitempty"`
}

// SchemeRoute is a scheme the connector routes to a gateway topic (mode connector: as served
// by the external connector; other modes: configured on the reference connector).
type SchemeRoute struct {
	Scheme string `yaml:"scheme" json:"scheme"`
	Topic  string `yaml:"topic,omitempty" json:"topic,omitempty"` // relative to the topic path; default "<scheme>gw"
}

// Limits are the target's declared limits.
type Limits struct {
	// MaxPayload is the largest PUBLISH payload the broker accepts, in bytes (0: unknown, 64 KB assumed).
	MaxPayload int `yaml:"maxPayload,omitempty" json:"maxPayload,omitempty"`
}

// Timeouts bound how long the harness waits for the target.
type Timeouts struct {
	// Reply: longest wait for an answer the protocol expects (default 5s, the client's timeout).
	Reply Duration `yaml:"reply,omitempty" json:"reply,omitempty"`
	// Quiet: how long silence must last before "no (further) message" is concluded (default 400ms).
	Quiet Duration `yaml:"quiet,omitempty" json:"quiet,omitempty"`
	// Spec: upper bound of one scenario (default 60s).
	Spec Duration `yaml:"spec,omitempty" json:"spec,omitempty"`
}

// Topology is how the harness deploys the reference connector it attaches (modes
// embedded and broker): one connector in the path (the default), several replicas
// sharing the routing topics, route-only, or route-only replicas.
type Topology struct {
	// Replicas > 1 runs that many connector replicas in one shared-subscription group.
	Replicas int `yaml:"replicas,omitempty" json:"replicas,omitempty"`
	// RouteOnly: the connector forwards START_SESSION and stays out of the session path.
	RouteOnly bool `yaml:"routeOnly,omitempty" json:"routeOnly,omitempty"`
}

// maxReplicas bounds Topology.Replicas (each replica is a full connector per scenario).
const maxReplicas = 8

// UnmarshalYAML accepts the mapping form and the shorthands "single", "route-only".
func (t *Topology) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		v, err := ParseTopology(n.Value)
		if err != nil {
			return err
		}
		*t = v
		return nil
	}
	type plain Topology
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*t = Topology(p)
	return nil
}

// ParseTopology reads the command-line form: "single", "route-only", "replicas=N", or
// "route-only,replicas=N".
func ParseTopology(s string) (Topology, error) {
	var t Topology
	for _, part := range strings.Split(s, ",") {
		switch k, v, _ := strings.Cut(strings.TrimSpace(part), "="); k {
		case "", "single":
		case "route-only", "routeOnly":
			t.RouteOnly = true
		case "replicas":
			n, err := strconv.Atoi(v)
			if err != nil {
				return Topology{}, fmt.Errorf("topology %q: replicas=%q is not a number", s, v)
			}
			t.Replicas = n
		default:
			return Topology{}, fmt.Errorf("topology %q: want single, route-only, replicas=N or route-only,replicas=N", s)
		}
	}
	return t, nil
}

// String names the topology as ParseTopology reads it.
func (t Topology) String() string { return verdict.Topology(t).String() }

// Declaration is what a target claims: the target declaration file (README.md, "Target
// declaration"). The harness judges a target only against what it claims.
type Declaration struct {
	Name    string  `yaml:"name" json:"name"`
	Mode    Mode    `yaml:"mode" json:"mode"`
	Profile Profile `yaml:"profile" json:"profile"`
	// Vendor/version text reported as is.
	Description string     `yaml:"description,omitempty" json:"description,omitempty"`
	Broker      BrokerURLs `yaml:"broker,omitempty" json:"broker,omitempty"`
	// TopicPath: in mode connector, the path the external connector serves. In the other modes
	// each scenario gets its own path below this one (the harness starts a connector per scenario).
	TopicPath string    `yaml:"topicPath,omitempty" json:"topicPath,omitempty"`
	Features  []Feature `yaml:"features,omitempty" json:"features,omitempty"`
	// ConnectorCredentials: what the reference connector authenticates as (mode broker, non-secure listener).
	ConnectorCredentials *Identity `yaml:"connectorCredentials,omitempty" json:"connectorCredentials,omitempty"`
	Secure               *Secure   `yaml:"secure,omitempty" json:"secure,omitempty"`
	// Queues: call-queue endpoint IDs the external connector serves (mode connector, feature queues).
	Queues []string `yaml:"queues,omitempty" json:"queues,omitempty"`
	// Schemes: scheme routes (feature schemes).
	Schemes  []SchemeRoute `yaml:"schemes,omitempty" json:"schemes,omitempty"`
	Limits   Limits        `yaml:"limits,omitempty" json:"limits,omitempty"`
	Timeouts Timeouts      `yaml:"timeouts,omitempty" json:"timeouts,omitempty"`
	// Topology of the reference connector the harness attaches (modes embedded and broker).
	Topology Topology `yaml:"topology,omitempty" json:"topology,omitempty"`

	topologyErr error // a bad topology override, reported by Validate
	// Notes explain known failures: requirement ID -> why the target fails it, with a link to
	// the vendor's documentation or issue. Reports show them next to the verdict; they never
	// change one.
	Notes map[string]string `yaml:"notes,omitempty" json:"notes,omitempty"`
	// Reproduce is the one command that re-runs this certification (shown in the matrix).
	Reproduce string `yaml:"reproduce,omitempty" json:"reproduce,omitempty"`
}

// EmbeddedDeclaration is the default target: the in-process reference, claiming everything it implements.
func EmbeddedDeclaration() Declaration {
	return Declaration{
		Name:        "embedded reference (mochi broker + reference connector)",
		Description: "in-process reference target started by the harness on random loopback ports",
		Mode:        ModeEmbedded,
		Profile:     ProfileStrict,
		TopicPath:   spec.DefaultTopicPath,
		Features: []Feature{FeatureWebSocket, FeatureSecure, FeatureQueues, Feature3PCC, FeatureEvents,
			FeatureSchemes, FeatureSharedSubs},
		Schemes:   []SchemeRoute{{Scheme: "sip", Topic: "sipgw"}},
		Limits:    Limits{MaxPayload: defaultEmbeddedMaxPayloadByte},
		Reproduce: "rtcomm-harness certify --out bundle-embedded/",
	}
}

// LoadDeclaration reads a declaration from a YAML or JSON file (JSON is YAML).
func LoadDeclaration(path string) (Declaration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Declaration{}, fmt.Errorf("target declaration: %w", err)
	}
	if len(b) > maxDeclarationFileSize {
		return Declaration{}, fmt.Errorf("target declaration %s: larger than %d bytes", path, maxDeclarationFileSize)
	}
	d, err := ParseDeclaration(b)
	if err != nil {
		return Declaration{}, fmt.Errorf("target declaration %s: %w", path, err)
	}
	return d, nil
}

// ParseDeclaration parses YAML or JSON; unknown fields are errors (a typo must not silently drop a claim).
func ParseDeclaration(b []byte) (Declaration, error) {
	var d Declaration
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return Declaration{}, fmt.Errorf("parse: %w", err)
	}
	return d, nil
}

// Env names read by ApplyEnv (flags of `certify` and of the test binary set the same fields).
const (
	EnvTarget    = "RTCOMM_TARGET"     // path of the declaration file
	EnvMode      = "RTCOMM_MODE"       // embedded | broker | connector
	EnvBrokerTCP = "RTCOMM_BROKER_TCP" // tcp://host:port
	EnvBrokerWS  = "RTCOMM_BROKER_WS"  // ws://host:port/mqtt
	EnvTopicPath = "RTCOMM_TOPIC_PATH"
	EnvProfile   = "RTCOMM_PROFILE"
	EnvUsername  = "RTCOMM_USERNAME"
	EnvPassword  = "RTCOMM_PASSWORD"
	EnvTopology  = "RTCOMM_TOPOLOGY" // single | route-only | replicas=N | route-only,replicas=N
)

// Overrides are the flag/env settings that win over the declaration file.
type Overrides struct {
	Mode      string
	BrokerTCP string
	BrokerWS  string
	TopicPath string
	Profile   string
	Username  string
	Password  string
	Topology  string // ParseTopology's form; "" keeps the declaration's
}

// OverridesFromEnv reads the RTCOMM_* variables.
func OverridesFromEnv(getenv func(string) string) Overrides {
	return Overrides{
		Mode: getenv(EnvMode), BrokerTCP: getenv(EnvBrokerTCP), BrokerWS: getenv(EnvBrokerWS),
		TopicPath: getenv(EnvTopicPath), Profile: getenv(EnvProfile),
		Username: getenv(EnvUsername), Password: getenv(EnvPassword), Topology: getenv(EnvTopology),
	}
}

// Apply sets every non-empty override on d.
func (o Overrides) Apply(d *Declaration) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	if o.Mode != "" {
		d.Mode = Mode(o.Mode)
	}
	if o.Profile != "" {
		d.Profile = Profile(o.Profile)
	}
	set(&d.Broker.TCP, o.BrokerTCP)
	set(&d.Broker.WS, o.BrokerWS)
	set(&d.TopicPath, o.TopicPath)
	set(&d.Broker.Username, o.Username)
	set(&d.Broker.Password, o.Password)
	if o.Topology != "" {
		t, err := ParseTopology(o.Topology)
		if err != nil {
			d.topologyErr = err // reported by Validate
			return
		}
		d.Topology = t
	}
}

// ResolveDeclaration builds the declaration from an optional file plus overrides. With neither
// a file nor a broker URL it is the embedded reference.
func ResolveDeclaration(path string, o Overrides) (Declaration, error) {
	var d Declaration
	switch {
	case path != "":
		var err error
		if d, err = LoadDeclaration(path); err != nil {
			return Declaration{}, err
		}
	case o.BrokerTCP == "" && o.BrokerWS == "" && (o.Mode == "" || o.Mode == string(ModeEmbedded)):
		d = EmbeddedDeclaration()
	default:
		d = Declaration{Name: "command-line target", Mode: ModeBroker}
	}
	o.Apply(&d)
	d.Normalize()
	if err := d.Validate(); err != nil {
		return Declaration{}, err
	}
	return d, nil
}

// Normalize fills defaults: profile strict, topic path /rtcomm/ with a trailing slash,
// timeouts, and the features implied by other fields.
func (d *Declaration) Normalize() {
	if d.Mode == "" {
		d.Mode = ModeEmbedded
	}
	if d.Profile == "" {
		d.Profile = ProfileStrict
	}
	if d.TopicPath == "" {
		d.TopicPath = spec.DefaultTopicPath
	}
	if !strings.HasSuffix(d.TopicPath, "/") {
		d.TopicPath += "/"
	}
	if d.Name == "" {
		d.Name = string(d.Mode) + " target"
	}
	if d.Timeouts.Reply == 0 {
		d.Timeouts.Reply = Duration(defaultReplyTimeout)
	}
	if d.Timeouts.Quiet == 0 {
		d.Timeouts.Quiet = Duration(defaultQuietWindow)
	}
	if d.Timeouts.Spec == 0 {
		d.Timeouts.Spec = Duration(defaultSpecTimeout)
	}
	if d.Secure != nil && !d.Claims(FeatureSecure) {
		d.Features = append(d.Features, FeatureSecure)
	}
	if d.Broker.WS != "" && d.Mode != ModeEmbedded && !d.Claims(FeatureWebSocket) {
		d.Features = append(d.Features, FeatureWebSocket)
	}
	for i := range d.Schemes {
		if d.Schemes[i].Topic == "" {
			d.Schemes[i].Topic = d.Schemes[i].Scheme + "gw"
		}
	}
	slices.Sort(d.Features)
	d.Features = slices.Compact(d.Features)
}

// Validate reports a declaration the harness cannot run against.
func (d *Declaration) Validate() error {
	var errs []error
	switch d.Mode {
	case ModeEmbedded:
	case ModeBroker, ModeConnector:
		if d.Broker.TCP == "" && d.Broker.WS == "" {
			errs = append(errs, fmt.Errorf("mode %s needs broker.tcp or broker.ws", d.Mode))
		}
	default:
		errs = append(errs, fmt.Errorf("mode %q: want embedded, broker or connector", d.Mode))
	}
	if d.Profile != ProfileStrict && d.Profile != ProfileClient {
		errs = append(errs, fmt.Errorf("profile %q: want strict or client", d.Profile))
	}
	for _, f := range d.Features {
		if !slices.Contains(spec.Features(), f) {
			errs = append(errs, fmt.Errorf("feature %q: want one of %v", f, spec.Features()))
		}
	}
	if d.Claims(FeatureWebSocket) && d.Mode != ModeEmbedded && d.Broker.WS == "" {
		errs = append(errs, errors.New("feature websocket claimed but broker.ws is empty"))
	}
	if d.Claims(FeatureSecure) && d.Mode != ModeEmbedded {
		switch {
		case d.Secure == nil:
			errs = append(errs, errors.New("feature secure claimed but no secure: section"))
		case len(d.Secure.Identities) < minSecureIdentities:
			errs = append(errs, fmt.Errorf("secure.identities: need at least %d, have %d", minSecureIdentities, len(d.Secure.Identities)))
		case d.Mode == ModeBroker && d.Secure.Connector == nil:
			errs = append(errs, errors.New("secure.connector: mode broker needs the credentials the reference connector uses"))
		}
	}
	if d.Secure != nil {
		for _, id := range d.Secure.CallControllers {
			i := slices.IndexFunc(d.Secure.Identities, func(x Identity) bool { return x.ID == id })
			if i < 0 || i < minSecureIdentities {
				errs = append(errs, fmt.Errorf("secure.callControllers: %q must be one of secure.identities after the first %d (scenarios use those as ordinary endpoints)", id, minSecureIdentities))
			}
		}
	}
	if d.Secure != nil && d.Secure.TLS && d.Mode != ModeEmbedded {
		errs = append(errs, errors.New("secure.tls: only mode embedded (the harness serves TLS itself); give an external broker's ssl:// or wss:// URL and secure.caFile instead"))
	}
	if d.Secure != nil && d.Secure.CAFile != "" && d.Mode == ModeEmbedded {
		errs = append(errs, errors.New("secure.caFile: not for mode embedded (use secure.tls)"))
	}
	if d.Claims(FeatureQueues) && d.Mode == ModeConnector && len(d.Queues) == 0 {
		errs = append(errs, errors.New("feature queues claimed in mode connector but queues: lists no queue endpoint ID"))
	}
	if d.Claims(FeatureSchemes) && len(d.Schemes) == 0 {
		errs = append(errs, errors.New("feature schemes claimed but schemes: is empty"))
	}
	if d.topologyErr != nil {
		errs = append(errs, d.topologyErr)
	}
	switch tp := d.Topology; {
	case tp.Replicas < 0 || tp.Replicas > maxReplicas:
		errs = append(errs, fmt.Errorf("topology.replicas %d: want 1 to %d", tp.Replicas, maxReplicas))
	case (tp.Replicas > 1 || tp.RouteOnly) && d.Mode == ModeConnector:
		errs = append(errs, errors.New("topology: only for modes embedded and broker (in mode connector the target's own connector is deployed as it is)"))
	case tp.Replicas > 1 && !d.Claims(FeatureSharedSubs):
		errs = append(errs, errors.New("topology.replicas needs a broker with shared subscriptions: claim feature shared-subscriptions"))
	}
	for id := range d.Notes {
		if _, ok := spec.Lookup(id); !ok {
			errs = append(errs, fmt.Errorf("notes: %q is not a requirement ID of catalog %s", id, spec.CatalogVersion))
		}
	}
	if strings.ContainsAny(d.TopicPath, "+#") {
		errs = append(errs, fmt.Errorf("topicPath %q contains an MQTT wildcard", d.TopicPath))
	}
	return errors.Join(errs...)
}

// Claims reports whether the declaration claims feature f.
func (d *Declaration) Claims(f Feature) bool {
	return f == "" || slices.Contains(d.Features, f)
}

// summary is what the verdicts record of the target (the bundle's target.yaml has the rest).
func (d Declaration) summary() verdict.Target {
	return verdict.Target{Name: d.Name, Mode: string(d.Mode), Profile: d.Profile, Description: d.Description,
		Broker: verdict.Broker{TCP: d.Broker.TCP, WS: d.Broker.WS}, TopicPath: d.TopicPath, Features: slices.Clone(d.Features),
		Topology: verdict.Topology(d.Topology), Notes: maps.Clone(d.Notes), Reproduce: d.Reproduce}
}

// ReplyTimeout is Timeouts.Reply as a time.Duration.
func (d *Declaration) ReplyTimeout() time.Duration { return time.Duration(d.Timeouts.Reply) }

// QuietWindow is Timeouts.Quiet as a time.Duration.
func (d *Declaration) QuietWindow() time.Duration { return time.Duration(d.Timeouts.Quiet) }

// MaxPayload is the declared payload limit (64 KB when undeclared).
func (d *Declaration) MaxPayload() int {
	if d.Limits.MaxPayload > 0 {
		return d.Limits.MaxPayload
	}
	return largePayloadThreshold
}

// Redacted returns a copy without passwords, for bundles and logs.
func (d Declaration) Redacted() Declaration {
	red := func(s string) string {
		if s == "" {
			return ""
		}
		return "(redacted)"
	}
	out := d
	out.Broker.Password = red(d.Broker.Password)
	if d.ConnectorCredentials != nil {
		c := *d.ConnectorCredentials
		c.Password = red(c.Password)
		out.ConnectorCredentials = &c
	}
	if d.Secure != nil {
		s := *d.Secure
		if s.Connector != nil {
			c := *s.Connector
			c.Password = red(c.Password)
			s.Connector = &c
		}
		s.Identities = make([]Identity, len(d.Secure.Identities))
		for i, id := range d.Secure.Identities {
			id.Password = red(id.Password)
			s.Identities[i] = id
		}
		out.Secure = &s
	}
	out.Features = slices.Clone(d.Features)
	return out
}

// WriteFile writes the (redacted) declaration as YAML.
func (d Declaration) WriteFile(path string) error {
	b, err := yaml.Marshal(d.Redacted())
	if err != nil {
		return fmt.Errorf("declaration: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("declaration: %w", err)
	}
	return os.WriteFile(path, b, 0o644)
}

// String is a one-line description for logs.
func (d Declaration) String() string {
	b, _ := json.Marshal(struct {
		Name    string    `json:"name"`
		Mode    Mode      `json:"mode"`
		Profile Profile   `json:"profile"`
		TCP     string    `json:"tcp,omitempty"`
		WS      string    `json:"ws,omitempty"`
		Path    string    `json:"topicPath"`
		Feat    []Feature `json:"features"`
	}{d.Name, d.Mode, d.Profile, d.Broker.TCP, d.Broker.WS, d.TopicPath, d.Features})
	return string(b)
}

// QuoteList renders strings for messages.
func QuoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
