package faulty_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/faulty"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// checkerFile is what a child writes next to its verdicts: the passive checker's findings
// on the run's traffic, seen inside the open broker (serve --check's hook) and the
// secured one (its broker judge, as serve --secure --check's).
const checkerFile = "checker.json"

// unobservable are the faults the passive checker cannot see, each with the reason; every
// other fault must give a finding against a requirement it breaks, blamed on the faulty
// party (caughtBy).
// TestCheckerFindsFaults fails when one of these starts giving such a finding: the list
// stays honest.
var unobservable = map[string]string{
	// The broker's own behaviour beyond what the broker judge models (delivery QoS, share
	// groups, wills, the retained store, and its publish ledger's dropped PUBLISHes and
	// deliveries never tried: docs/CHECK.md): what happens before the broker's hooks.
	// certify catches these (docs/FAULTS.md).
	"websocket-without-mqttv31": "a WebSocket handshake, before MQTT: nothing is published",
	"loses-publisher-order":     "the reordering happens before the broker's hook, which sees the publishes in the order they arrive, never the order they were sent in",
}

// deliberateFinding says why a baseline finding is right ("" when it is a false one): the
// suite makes endpoints misbehave on purpose. The connector, the reference, is never to
// blame; in the client profile no party is either, except where a scenario has it speak
// the written spec's dialect; the strict profile rightly flags the rtcomm.js-shaped
// parties' documented deviations (REG-003, SESS-012, SESS-014: PROTOCOL.md, "Known
// differences"). Replicas may relay a session's candidates out of order (ICE-005, a SHOULD).
func deliberateFinding(p scenarios.Profile, topology string, r checkerRecord) string {
	switch {
	case strings.HasPrefix(topology, "replicas") && r.Requirement == "ICE-005":
		// The replicas' documented deviation: a session's candidates may cross replicas
		// (reference/connector/DESIGN.md, "Replicas"; ICE-005 is a SHOULD).
		return "candidate order across replicas"
	case targetBlamed(r):
		return ""
	case strings.HasPrefix(r.Participant, "h"):
		// The harness's raw MQTT connections (scenarios/env.go: client IDs "h<tag>...") publish
		// the malformed input of the robustness, format and identity scenarios.
		return "raw input of a robustness, format or identity scenario"
	case p == scenarios.ProfileStrict && strings.HasPrefix(r.Participant, "rtc") && slices.Contains([]string{"REG-003", "SESS-012", "SESS-014"}, r.Requirement):
		return "an rtcomm.js-shaped party's documented deviation, under the strict profile"
	case p == scenarios.ProfileClient && r.Requirement == "REG-004":
		return "REG-005's scenario registers with the written spec's topic field"
	}
	return ""
}

// checkerRecord is one finding as a child writes it.
type checkerRecord struct {
	Path        string   `json:"path"`
	Requirement string   `json:"requirement"`
	Participant string   `json:"participant"`
	Expected    string   `json:"expected"`
	Actual      string   `json:"actual"`
	Evidence    []string `json:"evidence"`
}

// checkerRun is a child's checker output.
type checkerRun struct {
	Observed int             `json:"observed"`
	Findings []checkerRecord `json:"findings"`
}

// pathChecker is the checker hook of a whole suite run: every connector scenario runs on a
// topic path of its own (<topic path>s-<tag>/), so each gets its own checker, as serve
// --check has one for its one path; what is published right under the topic path (the
// security scenarios on a stand-in secured listener) gets one more. Broker-only scenarios
// publish synthetic payloads on private paths (/h-<tag>/): not rtcomm traffic, not judged.
type pathChecker struct {
	mqtt.HookBase
	root    string
	profile spec.Profile
	// broker judges the broker's deliveries and wills on every path (the broker-only
	// scenarios' private /h-<tag>/ paths included: delivery is not rtcomm-specific).
	broker *watch.Broker
	// brokerOnly: no protocol checkers, only the broker judge (the secured broker's).
	brokerOnly bool

	mu    sync.Mutex
	hooks map[string]*watch.Hook
}

func newPathChecker(root string, p spec.Profile) *pathChecker {
	return &pathChecker{root: root, profile: p, hooks: map[string]*watch.Hook{}, broker: watch.NewBroker("/")}
}

// ID names the hook in mochi's hook list.
func (p *pathChecker) ID() string { return "rtcomm-check-paths" }

// Provides declares what watch.Hook provides with a broker judge.
func (p *pathChecker) Provides(b byte) bool { return (&watch.Hook{Broker: p.broker}).Provides(b) }

// OnConnect tells the broker judge the will a CONNECT declares.
func (p *pathChecker) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	p.broker.Connected(cl, cl.ID, pk.Connect.Clean, watch.DeclaredWill(pk))
	return nil
}

// OnSubscribed tells the broker judge the granted QoS.
func (p *pathChecker) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	p.broker.Subscribed(cl.ID, watch.Filters(pk), codes)
}

// OnUnsubscribed tells the broker judge the filters went.
func (p *pathChecker) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	p.broker.Unsubscribed(cl.ID, watch.Filters(pk))
}

// OnUnsubscribe tells the broker judge the filters go, before the broker removes them.
func (p *pathChecker) OnUnsubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	p.broker.Unsubscribing(cl.ID, watch.Filters(pk))
	return pk
}

// OnPacketRead tells the broker judge of a CONNECT before any other hook can refuse it,
// and of a PUBLISH's retain flag as the client asked (and the read, for its publish ledger).
func (p *pathChecker) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Connect:
		p.broker.ConnectRead(cl, pk.Connect.ClientIdentifier, pk.ProtocolVersion, time.Now())
	case packets.Publish:
		watch.PublishRead(p.broker, cl, pk)
		p.broker.StampRead(cl)
		return pk, nil
	}
	p.broker.PacketRead(cl, cl.ID)
	return pk, nil
}

// OnRetainPublished tells the broker judge of a retained message sent from the store.
func (p *pathChecker) OnRetainPublished(cl *mqtt.Client, pk packets.Packet) {
	p.broker.RetainedDelivered(cl.ID, pk.TopicName, pk.Payload, time.Now())
}

// OnPublishDropped tells the broker judge of a retained message dropped for a full queue,
// and the path's checker of a delivery to its connector dropped so (as watch.Hook does).
func (p *pathChecker) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Retain {
		p.broker.RetainedDelivered(cl.ID, pk.TopicName, pk.Payload, time.Now())
	}
	for _, h := range p.hooksFor(pk.TopicName) {
		h.Checker.DeliveryDropped(cl.ID, pk.TopicName, pk.Payload)
	}
}

// OnPublished tells the broker judge's retained store of an accepted publish.
func (p *pathChecker) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	watch.PublishAccepted(p.broker, cl, pk)
}

// OnPublishFate hands the broker judge what the broker did with a PUBLISH it read.
func (p *pathChecker) OnPublishFate(cl *mqtt.Client, pk packets.Packet, f mqtt.PublishFate) {
	p.broker.PublishFate(cl, cl.ID, pk.TopicName, pk.Payload, pk.FixedHeader.Qos, watch.FateOf(f), time.Now())
}

// OnPacketSent judges a delivery or a CONNACK.
func (p *pathChecker) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		p.broker.Delivered(cl.ID, pk.TopicName, pk.Payload, pk.FixedHeader.Qos, pk.FixedHeader.Dup, time.Now())
		if pk.FixedHeader.Retain {
			p.broker.RetainedDelivered(cl.ID, pk.TopicName, pk.Payload, time.Now())
		}
	case packets.Connack:
		p.broker.ConnackSent(cl, pk.ReasonCode, time.Now())
		p.broker.SessionAcked(cl, pk.ReasonCode, pk.SessionPresent, time.Now())
	}
}

// OnSessionEstablish tells the broker judge of a CONNECT the broker's hooks let through.
func (p *pathChecker) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	p.broker.SessionEstablishing(cl, cl.ID, string(cl.Properties.Username), time.Now())
}

// OnRetainMessage judges what the broker retained.
func (p *pathChecker) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	if !cl.Net.Inline {
		p.broker.Retained(cl.ID, string(cl.Properties.Username), pk.TopicName, pk.Payload, time.Now())
	}
}

// OnClientExpired tells the broker judge a persisted session went.
func (p *pathChecker) OnClientExpired(cl *mqtt.Client) { p.broker.SessionExpired(cl.ID) }

// hook returns the checker hook of the topic's scenario path (nil when not watched).
func (p *pathChecker) hook(topic string) *watch.Hook {
	rest, ok := strings.CutPrefix(topic, p.root)
	if !ok || p.brokerOnly {
		return nil
	}
	path := p.root
	if tag, ok := strings.CutPrefix(rest, "s-"); ok {
		if i := strings.IndexByte(tag, '/'); i > 0 {
			path = p.root + "s-" + tag[:i] + "/"
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hooks[path]
	if h == nil {
		h = &watch.Hook{Checker: watch.New(watch.Config{TopicPath: path, Profile: p.profile, FromStart: true})}
		p.hooks[path] = h
	}
	return h
}

// hooksFor returns the checker of the topic's path, or every checker for a topic outside
// the topic path (a 3PCC requester's bare client ID: each checker judges only the ones
// its own requesters named); broker-only paths are not judged.
func (p *pathChecker) hooksFor(topic string) []*watch.Hook {
	if h := p.hook(topic); h != nil {
		return []*watch.Hook{h}
	}
	if strings.HasPrefix(topic, "/h-") || p.brokerOnly {
		return nil
	}
	return p.all()
}

func (p *pathChecker) all() []*watch.Hook {
	p.mu.Lock()
	defer p.mu.Unlock()
	hs := make([]*watch.Hook, 0, len(p.hooks))
	for _, h := range p.hooks {
		hs = append(hs, h)
	}
	return hs
}

// OnPublish judges the publish on its path's checker.
func (p *pathChecker) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	o := watch.Observation{Topic: pk.TopicName, Payload: pk.Payload, Client: cl.ID, Time: time.Now()}
	p.broker.PublishedBy(string(cl.Properties.Username), o)
	p.broker.Published(o, pk.FixedHeader.Qos)
	for _, h := range p.hooksFor(pk.TopicName) {
		_, _ = h.OnPublish(cl, pk)
	}
	return pk, nil
}

// OnWillSent judges a Last Will on its path's checker.
func (p *pathChecker) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	p.broker.WillRetained(cl, cl.ID, string(cl.Properties.Username), watch.Will{Topic: pk.TopicName, Payload: pk.Payload, Retained: pk.FixedHeader.Retain}, time.Now())
	p.broker.WillSent(cl, cl.ID, watch.Will{Topic: pk.TopicName, Payload: pk.Payload, Retained: pk.FixedHeader.Retain, QoS: pk.FixedHeader.Qos}, time.Now())
	for _, h := range p.hooksFor(pk.TopicName) {
		h.OnWillSent(cl, pk)
	}
}

// OnSubscribe tells the filter's path's checker (a connector subscribes to its management topic).
func (p *pathChecker) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	p.broker.Subscribing(cl.ID, watch.Filters(pk))
	p.broker.SubscribeOptions(cl.ID, watch.SubscribeOptions(pk))
	for _, f := range pk.Filters {
		filter := f.Filter
		if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
			_, filter, _ = strings.Cut(rest, "/")
		}
		if h := p.hook(filter); h != nil {
			h.OnSubscribe(cl, packets.Packet{Filters: packets.Subscriptions{f}})
		}
	}
	return pk
}

// OnDisconnect tells every checker.
func (p *pathChecker) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if expire {
		p.broker.SessionExpiring(cl, cl.ID)
	}
	p.broker.Disconnected(cl, cl.ID)
	p.broker.SessionEnded(cl, cl.ID, expire, time.Now())
	for _, h := range p.all() {
		h.OnDisconnect(cl, err, expire)
	}
}

// settle waits (at most limit) until nothing any checker waits for is still pending: the
// fault runs stop a scenario's connector 2 s after a reply failed to come, before the
// protocol's 5 s have passed, and a checker finished early would judge less than it saw.
func (p *pathChecker) settle(limit time.Duration) {
	due := p.broker.Due()
	for _, h := range p.all() {
		if d := h.Checker.Due(); d.After(due) {
			due = d
		}
	}
	if wait := time.Until(due); wait > 0 {
		time.Sleep(min(wait, limit))
	}
}

// write finishes every checker, and those of secure (the secured broker's, when not nil),
// and writes their findings to dir/checker.json; the secured broker's are under paths
// prefixed "secure ".
func (p *pathChecker) write(dir string, secure *pathChecker) error {
	var run checkerRun
	p.collect(&run, "")
	if secure != nil {
		secure.collect(&run, "secure ")
	}
	b, err := json.MarshalIndent(run, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, checkerFile), b, 0o644)
}

// collect finishes the checkers and adds their findings to run, paths prefixed.
func (p *pathChecker) collect(run *checkerRun, prefix string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	add := func(path string, f watch.Finding) {
		r := checkerRecord{Path: prefix + path, Requirement: f.Requirement, Participant: f.Participant, Expected: f.Expected, Actual: f.Actual}
		for _, e := range f.Evidence {
			r.Evidence = append(r.Evidence, e.Topic+" "+brief(e.Payload))
		}
		run.Findings = append(run.Findings, r)
	}
	for path, h := range p.hooks {
		h.Checker.Finish(now)
		run.Observed += h.Checker.Observed()
		for _, f := range h.Checker.Findings() {
			add(path, f)
		}
	}
	p.broker.Finish(now)
	for _, f := range p.broker.Findings() {
		add("broker", f)
	}
}

func brief(b []byte) string {
	if len(b) > 160 {
		return string(b[:157]) + "..."
	}
	return string(b)
}

// readCheckerRun reads a child's checker output (nil when it wrote none).
func readCheckerRun(dir string) *checkerRun {
	b, err := os.ReadFile(filepath.Join(dir, checkerFile))
	if err != nil {
		return nil
	}
	var run checkerRun
	if json.Unmarshal(b, &run) != nil {
		return nil
	}
	return &run
}

// brokerFault reports whether a fault is the broker's: it breaks BRK- requirements only.
func brokerFault(f faulty.Fault) bool {
	return !slices.ContainsFunc(f.Breaks, func(r string) bool { return !strings.HasPrefix(r, "BRK-") })
}

// targetBlamed reports whether a finding blames the connector.
func targetBlamed(r checkerRecord) bool {
	return strings.HasPrefix(r.Participant, watch.ConnectorParticipant)
}

// brokerRequirement reports whether the catalog holds the broker to a requirement (BRK-,
// and the secured broker's ID- ones): a finding against it blames the broker.
func brokerRequirement(id string) bool {
	r, ok := spec.Lookup(id)
	return ok && r.Subject == spec.SubjectBroker
}

// caughtBy returns the findings against a requirement the fault breaks, blamed on the
// faulty party: the broker for a requirement the catalog holds the broker to (a broker
// fault breaks BRK- requirements, the secured broker's faults ID- ones), else the
// connector.
func caughtBy(f faulty.Fault, run *checkerRun) []checkerRecord {
	var out []checkerRecord
	for _, r := range run.Findings {
		blamed := targetBlamed(r)
		if brokerFault(f) || brokerRequirement(r.Requirement) {
			blamed = r.Participant == watch.BrokerParticipant
		}
		if slices.Contains(f.Breaks, r.Requirement) && blamed {
			out = append(out, r)
		}
	}
	return out
}

// TestCheckerFindsFaults runs the fault catalogue with the passive checker inside the
// open broker (serve --check's hook, one checker per scenario path): the baseline gives no
// finding at all, every fault not declared unobservable gives a finding against a
// requirement it breaks blamed on the connector, and no declared-unobservable one does.
// It shares the child runs of TestFaultyTargetsAreCaught when both run in one process
// (make faulty).
func TestCheckerFindsFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite once per faulty target (CI: .ci/run)")
	}
	faults := faulty.Faults()
	only := os.Getenv("RTCOMM_FAULTS")
	if only != "" {
		faults = slices.DeleteFunc(faults, func(f faulty.Fault) bool { return !slices.Contains(strings.Split(only, ","), f.Name) })
	}
	var mu sync.Mutex
	rows := map[string]string{}
	t.Cleanup(func() {
		if *update && only == "" && !t.Failed() {
			if err := writeCheckerTable(rows); err != nil {
				t.Error(err)
			}
		}
	})
	for _, p := range []scenarios.Profile{scenarios.ProfileStrict, scenarios.ProfileClient} {
		t.Run("baseline-"+string(p), func(t *testing.T) {
			t.Parallel()
			judgeBaseline(t, string(p), p, "", runCached(t, baseline, p, ""))
		})
	}
	// The connector topologies certify runs too: routing only (the parties then talk
	// directly), and two replicas sharing the work (a session's messages may cross replicas).
	for _, topo := range []string{"route-only", "replicas=2"} {
		t.Run("baseline-client-"+topo, func(t *testing.T) {
			t.Parallel()
			judgeBaseline(t, topo, scenarios.ProfileClient, topo, runChildIn(t, baseline, scenarios.ProfileClient, "", topo))
		})
	}
	for _, f := range faults {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			profile := f.Profile
			if profile == "" {
				profile = scenarios.ProfileStrict
			}
			res := runCached(t, f.Name, profile, f.LabelFilter())
			if res.checked == nil {
				t.Fatalf("%s: the child wrote no checker findings", f.Name)
			}
			got := caughtBy(f, res.checked)
			// The broker is blamed only for what its fault breaks: in a connector fault's
			// run it is the unmodified reference, which must give the broker judge nothing.
			for _, r := range res.checked.Findings {
				if r.Participant == watch.BrokerParticipant && !(slices.Contains(f.Breaks, r.Requirement) && (brokerFault(f) || brokerRequirement(r.Requirement))) {
					t.Errorf("%s: the broker blamed for %s, which this fault does not break: expected %s, actual %s (evidence %q)", f.Name, r.Requirement, r.Expected, r.Actual, r.Evidence)
				}
			}
			why, declared := unobservable[f.Name]
			row := ""
			switch {
			case len(got) > 0 && declared:
				t.Errorf("%s is declared unobservable (%s) but the checker found it: %s by %s: %s; drop it from the list", f.Name, why, got[0].Requirement, got[0].Participant, got[0].Expected)
			case len(got) > 0:
				row = fmt.Sprintf("%s by %s: expected %s, actual %s", got[0].Requirement, got[0].Participant, got[0].Expected, got[0].Actual)
			case declared:
				row = "not observable: " + why
			default:
				var other []string
				for _, r := range res.checked.Findings {
					other = append(other, r.Requirement+" by "+r.Participant+": "+r.Expected)
				}
				t.Errorf("%s (breaks %v): no checker finding against it blamed on the connector (%d publishes judged; other findings %q)", f.Name, f.Breaks, res.checked.Observed, other)
			}
			mu.Lock()
			rows[f.Name] = row
			mu.Unlock()
			t.Logf("%s: %d publishes judged, %d findings; %s", f.Name, res.checked.Observed, len(res.checked.Findings), row)
		})
	}
}

// judgeBaseline requires no finding on the unmodified reference's traffic but those the
// suite provokes on purpose (deliberateFinding), and the suite's traffic judged.
func judgeBaseline(t *testing.T, name string, p scenarios.Profile, topology string, res childResult) {
	t.Helper()
	if res.checked == nil {
		t.Fatalf("baseline (%s): the child wrote no checker findings", name)
	}
	deliberate, why := 0, map[string]int{}
	for _, r := range res.checked.Findings {
		if w := deliberateFinding(p, topology, r); w != "" {
			deliberate++
			why[w]++
			continue
		}
		t.Errorf("baseline (%s): %s violated by %s: expected %s, actual %s (%s; evidence %q)", name, r.Requirement, r.Participant, r.Expected, r.Actual, r.Path, r.Evidence)
	}
	if res.checked.Observed < 1000 {
		t.Errorf("baseline (%s): expected the suite's traffic judged (>= 1000 publishes), actual %d", name, res.checked.Observed)
	}
	t.Logf("baseline (%s): %d publishes judged, %d findings, %d of them expected: %v",
		name, res.checked.Observed, len(res.checked.Findings), deliberate, why)
}

// TestUnobservableFaultsExist keeps the declared list to faults of the catalogue.
func TestUnobservableFaultsExist(t *testing.T) {
	for name, why := range unobservable {
		if _, err := faulty.ByName(name); err != nil {
			t.Errorf("declared unobservable %s: %v", name, err)
		}
		if why == "" {
			t.Errorf("declared unobservable %s: needs a reason", name)
		}
	}
}

const (
	checkDoc   = "../../docs/CHECK.md"
	tableBegin = "<!-- checker-faults:begin (generated by go test ./scenarios/faulty -run TestCheckerFindsFaults -update) -->\n"
	tableEnd   = "<!-- checker-faults:end -->\n"
)

// writeCheckerTable rewrites the generated table of docs/CHECK.md from a full run.
func writeCheckerTable(rows map[string]string) error {
	doc, err := os.ReadFile(checkDoc)
	if err != nil {
		return err
	}
	i, j := bytes.Index(doc, []byte(tableBegin)), bytes.Index(doc, []byte(tableEnd))
	if i < 0 || j < i {
		return fmt.Errorf("%s: no generated section (%q ... %q)", checkDoc, tableBegin, tableEnd)
	}
	names := make([]string, 0, len(rows))
	for n := range rows {
		names = append(names, n)
	}
	sort.Strings(names)
	caught := 0
	for _, n := range names {
		if !strings.HasPrefix(rows[n], "not observable") {
			caught++
		}
	}
	var b bytes.Buffer
	b.WriteString(tableBegin)
	fmt.Fprintf(&b, "\nLast full run: %d faults; %d observable by the checker, %d of them caught (a finding against a requirement the fault breaks, blamed on the faulty party: the broker or the connector); %d declared not observable.\n\n",
		len(names), caught, caught, len(names)-caught)
	b.WriteString("| fault | breaks | the checker's finding, or why it cannot see the fault |\n|---|---|---|\n")
	for _, n := range names {
		f, _ := faulty.ByName(n)
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", n, strings.Join(f.Breaks, ", "), cell(rows[n]))
	}
	b.WriteString("\n" + tableEnd)
	out := append(append(append([]byte{}, doc[:i]...), b.Bytes()...), doc[j+len(tableEnd):]...)
	return os.WriteFile(checkDoc, out, 0o644)
}
