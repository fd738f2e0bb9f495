package scenarios_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
)

func TestTestdataDeclarationsAreValid(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("expected the example declarations in testdata, actual %v (%v)", files, err)
	}
	for _, f := range files {
		// Broker URLs usually come from the command line.
		o := scenarios.Overrides{BrokerTCP: "tcp://127.0.0.1:1883", BrokerWS: "ws://127.0.0.1:8080/mqtt"}
		d, err := scenarios.ResolveDeclaration(f, o)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if d.Name == "" || d.TopicPath == "" || d.Timeouts.Reply == 0 {
			t.Errorf("%s: expected name, topic path and timeouts after normalizing, actual %+v", f, d)
		}
	}
}

func TestDeclarationRejectsUnknownFieldsAndFeatures(t *testing.T) {
	t.Parallel()
	if _, err := scenarios.ParseDeclaration([]byte("name: x\nmode: broker\nfeaturez: [events]\n")); err == nil {
		t.Error("expected an error for the unknown field featurez, actual none")
	}
	d, err := scenarios.ParseDeclaration([]byte("name: x\nmode: broker\nbroker: {tcp: tcp://h:1}\nfeatures: [telepathy]\n"))
	if err != nil {
		t.Fatal(err)
	}
	d.Normalize()
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "telepathy") {
		t.Errorf("expected an error naming the unknown feature, actual %v", err)
	}
}

func TestDeclarationDefaultsAndImpliedFeatures(t *testing.T) {
	t.Parallel()
	d, err := scenarios.ParseDeclaration([]byte(`{"name":"j","mode":"connector","broker":{"tcp":"tcp://h:1","ws":"ws://h:2/mqtt"},
		"topicPath":"/x","secure":{"identities":[{"id":"a","password":"p"},{"id":"b","password":"p"},{"id":"c","password":"p"}]},
		"timeouts":{"reply":"2s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	d.Normalize()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d.TopicPath != "/x/" || d.Profile != scenarios.ProfileStrict || d.ReplyTimeout() != 2*time.Second {
		t.Errorf("expected path /x/, profile strict, reply 2s; actual %q %q %s", d.TopicPath, d.Profile, d.ReplyTimeout())
	}
	for _, f := range []scenarios.Feature{scenarios.FeatureSecure, scenarios.FeatureWebSocket} {
		if !slices.Contains(d.Features, f) {
			t.Errorf("expected %s implied, actual features %v", f, d.Features)
		}
	}
	red := d.Redacted()
	if red.Secure.Identities[0].Password != "(redacted)" || d.Secure.Identities[0].Password != "p" {
		t.Errorf("expected a redacted copy and an untouched original")
	}
}

func TestResolveWithoutAnythingIsTheEmbeddedReference(t *testing.T) {
	t.Parallel()
	d, err := scenarios.ResolveDeclaration("", scenarios.OverridesFromEnv(func(string) string { return "" }))
	if err != nil {
		t.Fatal(err)
	}
	if d.Mode != scenarios.ModeEmbedded {
		t.Errorf("expected mode embedded, actual %s", d.Mode)
	}
	if _, err := scenarios.ResolveDeclaration(filepath.Join(t.TempDir(), "missing.yaml"), scenarios.Overrides{}); err == nil ||
		!os.IsNotExist(unwrapAll(err)) {
		t.Errorf("expected a not-exist error for a missing file, actual %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		next := u.Unwrap()
		if next == nil {
			return err
		}
		err = next
	}
}

func TestDeclarationTopology(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]scenarios.Topology{
		"topology: {replicas: 2}":                  {Replicas: 2},
		"topology: route-only":                     {RouteOnly: true},
		"topology: {routeOnly: true, replicas: 3}": {Replicas: 3, RouteOnly: true},
		"topology: single":                         {},
	} {
		d, err := scenarios.ParseDeclaration([]byte("name: x\nmode: broker\nbroker: {tcp: tcp://h:1}\nfeatures: [shared-subscriptions]\n" + in + "\n"))
		if err != nil {
			t.Errorf("%s: expected it parsed, actual %v", in, err)
			continue
		}
		if d.Normalize(); d.Topology != want || d.Validate() != nil {
			t.Errorf("%s: expected %+v and valid, actual %+v (%v)", in, want, d.Topology, d.Validate())
		}
	}
	for in, wantErr := range map[string]string{
		"mode: broker\nbroker: {tcp: tcp://h:1}\ntopology: {replicas: 2}":                                    "shared-subscriptions",
		"mode: connector\nbroker: {tcp: tcp://h:1}\ntopology: route-only":                                    "only for modes embedded and broker",
		"mode: broker\nbroker: {tcp: tcp://h:1}\nfeatures: [shared-subscriptions]\ntopology: {replicas: 99}": "want 1 to 8",
		"mode: broker\nbroker: {tcp: tcp://h:1}\ntopology: sideways":                                         "want single, route-only",
	} {
		d, err := scenarios.ParseDeclaration([]byte("name: x\n" + in + "\n"))
		if err == nil {
			d.Normalize()
			err = d.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: expected an error containing %q, actual %v", in, wantErr, err)
		}
	}
	d, err := scenarios.ResolveDeclaration("", scenarios.Overrides{Topology: "route-only,replicas=2"})
	if err != nil || d.Topology != (scenarios.Topology{Replicas: 2, RouteOnly: true}) {
		t.Errorf("override route-only,replicas=2: expected it applied, actual %+v (%v)", d.Topology, err)
	}
	if _, err := scenarios.ResolveDeclaration("", scenarios.Overrides{Topology: "replicas=two"}); err == nil {
		t.Error("override replicas=two: expected an error, actual none")
	}
}

func TestDeclarationNotesNameCatalogRequirements(t *testing.T) {
	t.Parallel()
	d, err := scenarios.ParseDeclaration([]byte("name: x\nmode: broker\nbroker: {tcp: tcp://h:1}\nnotes: {BRK-010: ok, BRK-099: typo}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d.Normalize()
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "BRK-099") || strings.Contains(err.Error(), "BRK-010") {
		t.Errorf("expected an error naming only the unknown BRK-099, actual %v", err)
	}
}
