package kubernetes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The slice of the Kubernetes API the manifests use: just what the checks read. yaml.v3's
// KnownFields makes a misspelled field a parse error, so a field the checks rely on cannot
// silently go missing.
type (
	object struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   meta              `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`       // ConfigMap
		StringData map[string]string `yaml:"stringData"` // Secret (must not exist here)
		Spec       yaml.Node         `yaml:"spec"`
	}
	meta struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	jobSpec struct {
		CompletionMode       string      `yaml:"completionMode"`
		Completions          *int        `yaml:"completions"`
		Parallelism          *int        `yaml:"parallelism"`
		BackoffLimit         *int        `yaml:"backoffLimit"`
		BackoffLimitPerIndex *int        `yaml:"backoffLimitPerIndex"`
		MaxFailedIndexes     *int        `yaml:"maxFailedIndexes"`
		Template             podTemplate `yaml:"template"`
	}
	podTemplate struct {
		Metadata meta    `yaml:"metadata"`
		Spec     podSpec `yaml:"spec"`
	}
	podSpec struct {
		RestartPolicy             string      `yaml:"restartPolicy"`
		TopologySpreadConstraints []yaml.Node `yaml:"topologySpreadConstraints"`
		SecurityContext           yaml.Node   `yaml:"securityContext"`
		InitContainers            []container `yaml:"initContainers"`
		Containers                []container `yaml:"containers"`
		Volumes                   []volume    `yaml:"volumes"`
	}
	container struct {
		Name         string        `yaml:"name"`
		Image        string        `yaml:"image"`
		Command      []string      `yaml:"command"`
		Args         []string      `yaml:"args"`
		EnvFrom      []envFrom     `yaml:"envFrom"`
		Env          []envVar      `yaml:"env"`
		Resources    resources     `yaml:"resources"`
		VolumeMounts []volumeMount `yaml:"volumeMounts"`
	}
	envFrom struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	}
	envVar struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name     string `yaml:"name"`
				Key      string `yaml:"key"`
				Optional *bool  `yaml:"optional"`
			} `yaml:"secretKeyRef"`
			ConfigMapKeyRef *yaml.Node `yaml:"configMapKeyRef"`
			FieldRef        *yaml.Node `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	}
	resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	}
	volumeMount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	}
	volume struct {
		Name                  string `yaml:"name"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	}
	pvcSpec struct {
		AccessModes []string  `yaml:"accessModes"`
		Resources   resources `yaml:"resources"`
	}
)

// manifests reads every object of every *.yaml in this directory, by kind/name.
func manifests(t testing.TB) map[string]object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	objs := map[string]object{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var o object
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			key := o.Kind + "/" + o.Metadata.Name
			if o.Kind == "" || o.Metadata.Name == "" || o.APIVersion == "" {
				t.Fatalf("%s document %d: apiVersion, kind and metadata.name are required", f, i)
			}
			if _, dup := objs[key]; dup {
				t.Fatalf("%s: %s defined twice", f, key)
			}
			objs[key] = o
		}
	}
	return objs
}

// decodeSpec decodes an object's spec strictly (unknown fields are errors).
func decodeSpec(t testing.TB, o object, into any) {
	t.Helper()
	b, err := yaml.Marshal(&o.Spec)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s/%s spec: %v", o.Kind, o.Metadata.Name, err)
	}
}

func job(t testing.TB, objs map[string]object, name string) jobSpec {
	t.Helper()
	o, ok := objs["Job/"+name]
	if !ok {
		t.Fatalf("no Job %s among %d objects", name, len(objs))
	}
	if o.APIVersion != "batch/v1" {
		t.Errorf("Job %s: apiVersion %s, want batch/v1", name, o.APIVersion)
	}
	var js jobSpec
	decodeSpec(t, o, &js)
	return js
}

// flag returns the value of --name=value in args ("", false when absent).
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name {
			return "", true
		}
	}
	return "", false
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// definedVars are the variables a container's $(VAR) references can use: its env, the keys
// of the ConfigMaps it imports, and what the Job controller adds to an Indexed Job's pods.
func definedVars(c container, objs map[string]object, indexed bool) map[string]bool {
	vars := map[string]bool{}
	for _, e := range c.Env {
		vars[e.Name] = true
	}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			for k := range objs["ConfigMap/"+ef.ConfigMapRef.Name].Data {
				vars[k] = true
			}
		}
	}
	if indexed {
		vars["JOB_COMPLETION_INDEX"] = true
	}
	return vars
}

var secretish = regexp.MustCompile(`(?i)pass|secret|token|credential|user(name)?\b|apikey|api_key`)

// TestManifests parses deploy/kubernetes/*.yaml and checks what makes the distributed run
// right: an Indexed Job of N shards whose index is the shard index, started together, one
// count of N everywhere, no retries that would start late, a shared volume, credentials only
// from a Secret, every $(VAR) defined (Kubernetes leaves an undefined one as literal text),
// requests that fit docs/PERFORMANCE.md's per-endpoint and per-call costs.
func TestManifests(t *testing.T) {
	t.Parallel()
	objs := manifests(t)
	cm, ok := objs["ConfigMap/rtcomm-load"]
	if !ok {
		t.Fatal("no ConfigMap rtcomm-load")
	}
	for kind := range objs {
		if strings.HasPrefix(kind, "Secret/") {
			t.Errorf("%s is in the manifests: credentials must be created out of band, never committed", kind)
		}
	}
	for k, v := range cm.Data {
		if secretish.MatchString(k) {
			t.Errorf("ConfigMap key %s looks like a credential: it belongs in the Secret", k)
		}
		if strings.Contains(v, "@") && strings.Contains(v, "://") {
			t.Errorf("ConfigMap %s=%q carries credentials in a URL", k, v)
		}
	}

	load := job(t, objs, "rtcomm-load")
	if load.CompletionMode != "Indexed" {
		t.Errorf("load Job completionMode %q, want Indexed (JOB_COMPLETION_INDEX is the shard index)", load.CompletionMode)
	}
	if load.Completions == nil || load.Parallelism == nil || *load.Completions != *load.Parallelism || *load.Completions < 2 {
		t.Fatalf("load Job completions %v, parallelism %v: want equal and >= 2 (all shards at once)", load.Completions, load.Parallelism)
	}
	n := *load.Completions
	if load.BackoffLimitPerIndex == nil || *load.BackoffLimitPerIndex != 0 || load.MaxFailedIndexes == nil || *load.MaxFailedIndexes != n {
		t.Errorf("load Job: backoffLimitPerIndex %s, maxFailedIndexes %s: want 0 and %d (no late retries; a failed shard does not stop the others)",
			show(load.BackoffLimitPerIndex), show(load.MaxFailedIndexes), n)
	}
	if load.BackoffLimit != nil {
		t.Errorf("load Job sets backoffLimit %d: with it a failed shard can terminate the running ones", *load.BackoffLimit)
	}
	ps := load.Template.Spec
	if ps.RestartPolicy != "Never" || len(ps.Containers) != 1 {
		t.Fatalf("load pod: restartPolicy %q, %d containers; want Never and 1", ps.RestartPolicy, len(ps.Containers))
	}
	c := ps.Containers[0]
	if c.Image != "rtcomm-harness:dev" {
		t.Errorf("load image %q: run.sh replaces exactly rtcomm-harness:dev with $IMAGE", c.Image)
	}
	if len(c.Command) != 0 || len(c.Args) == 0 || c.Args[0] != "load" {
		t.Fatalf("load container runs %v %v, want the image's entrypoint with args load ...", c.Command, c.Args)
	}
	want := map[string]string{
		"shard-index-env": "JOB_COMPLETION_INDEX",
		"shards":          strconv.Itoa(n),
		"start-at":        "$(START_AT)",
		"broker":          "$(BROKER_URL)",
		"username":        "$(MQTT_USERNAME)",
		"password":        "$(MQTT_PASSWORD)",
	}
	for f, v := range want {
		if got, ok := flag(c.Args, f); !ok || got != v {
			t.Errorf("load args: --%s=%q, want %q", f, got, v)
		}
	}
	if _, ok := flag(c.Args, "no-connector"); !ok {
		t.Error("load args lack --no-connector: every shard would attach its own connector to the target")
	}
	if _, ok := flag(c.Args, "shard"); ok {
		t.Error("load args set --shard as well as --shard-index-env")
	}
	out, _ := flag(c.Args, "out")
	if !strings.Contains(out, "$(JOB_COMPLETION_INDEX)") || !strings.Contains(out, "$(RUN_ID)") {
		t.Errorf("--out=%q: want a directory per run and per shard on the shared volume", out)
	}
	vars := definedVars(c, objs, true)
	for _, a := range c.Args {
		for _, m := range varRef.FindAllStringSubmatch(a, -1) {
			if !vars[m[1]] {
				t.Errorf("load arg %q uses $(%s), which the container does not define: Kubernetes would pass it literally", a, m[1])
			}
		}
	}
	for _, e := range c.Env {
		if secretish.MatchString(e.Name) {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("env %s: a credential must come from a secretKeyRef, not a value", e.Name)
			} else if o := e.ValueFrom.SecretKeyRef.Optional; o != nil && *o {
				t.Errorf("env %s: an optional secret leaves $(%s) literal in the args when missing", e.Name, e.Name)
			}
		}
	}
	for _, a := range c.Args {
		if k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok && secretish.MatchString(k) && !varRef.MatchString(v) {
			t.Errorf("load arg %q carries a credential inline", a)
		}
	}

	// The results volume: shared by every shard and the merge.
	claim := func(ps podSpec, mountedBy container) string {
		for _, vm := range mountedBy.VolumeMounts {
			for _, v := range ps.Volumes {
				if v.Name == vm.Name && v.PersistentVolumeClaim != nil && vm.MountPath != "" {
					return v.PersistentVolumeClaim.ClaimName
				}
			}
		}
		return ""
	}
	results := claim(ps, c)
	pvcObj, ok := objs["PersistentVolumeClaim/"+results]
	if !ok {
		t.Fatalf("the load container mounts no PersistentVolumeClaim defined here (claim %q)", results)
	}
	var pvc pvcSpec
	decodeSpec(t, pvcObj, &pvc)
	if len(pvc.AccessModes) != 1 || pvc.AccessModes[0] != "ReadWriteMany" {
		t.Errorf("results claim access modes %v: shards on different nodes need ReadWriteMany", pvc.AccessModes)
	}

	// Requests sized from docs/PERFORMANCE.md: 80 KB per endpoint (79 KB measured at GOGC=400)
	// and at most 2.5 ms of CPU per call attempt.
	endpoints, err1 := strconv.Atoi(cm.Data["ENDPOINTS"])
	rate, err2 := strconv.ParseFloat(cm.Data["RATE"], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("ConfigMap ENDPOINTS %q, RATE %q: %v %v", cm.Data["ENDPOINTS"], cm.Data["RATE"], err1, err2)
	}
	mem, err := quantity(c.Resources.Requests["memory"])
	if err != nil {
		t.Fatalf("memory request: %v", err)
	}
	if need := float64(endpoints) / float64(n) * 80e3; mem < need {
		t.Errorf("memory request %s < %d endpoints per shard x 80 KB = %.0f MB", c.Resources.Requests["memory"], endpoints/n, need/1e6)
	}
	cpu, err := quantity(c.Resources.Requests["cpu"])
	if err != nil {
		t.Fatalf("cpu request: %v", err)
	}
	if need := rate / float64(n) * 2.5e-3; cpu < need {
		t.Errorf("cpu request %s < %.0f calls/s per shard x 2.5 ms = %.2f cores", c.Resources.Requests["cpu"], rate/float64(n), need)
	}
	if _, ok := c.Resources.Limits["cpu"]; ok {
		t.Error("load container has a CPU limit: CFS throttling stalls the schedule and makes runs invalid")
	}
	if lim, err := quantity(c.Resources.Limits["memory"]); err != nil || lim < mem {
		t.Errorf("memory limit %q below the request", c.Resources.Limits["memory"])
	}

	// The merge Job: same N, same volume, every shard's directory.
	merge := job(t, objs, "rtcomm-merge")
	mps := merge.Template.Spec
	if len(mps.InitContainers) != 1 || len(mps.Containers) != 1 {
		t.Fatalf("merge Job: %d init containers, %d containers; want merge then report", len(mps.InitContainers), len(mps.Containers))
	}
	mc, rc := mps.InitContainers[0], mps.Containers[0]
	if len(mc.Args) < 5 || mc.Args[0] != "report" || mc.Args[1] != "merge" {
		t.Fatalf("merge args %v, want report merge ...", mc.Args)
	}
	if got, _ := flag(mc.Args, "shards"); got != strconv.Itoa(n) {
		t.Errorf("merge --shards=%q, load Job has %d", got, n)
	}
	shardGlob := strings.Replace(out, "$(JOB_COMPLETION_INDEX)", "*", 1)
	if mc.Args[len(mc.Args)-1] != shardGlob {
		t.Errorf("merge reads %q, the shards write %q", mc.Args[len(mc.Args)-1], shardGlob)
	}
	if len(rc.Args) < 3 || rc.Args[0] != "report" || rc.Args[1] != "load" || rc.Args[len(rc.Args)-1] != mc.Args[len(mc.Args)-2] {
		t.Errorf("report container args %v: want report load of the merged directory %s", rc.Args, mc.Args[len(mc.Args)-2])
	}
	for _, x := range []container{mc, rc} {
		if got := claim(mps, x); got != results {
			t.Errorf("merge container %s mounts claim %q, the shards write to %q", x.Name, got, results)
		}
		vars := definedVars(x, objs, false)
		for _, a := range x.Args {
			for _, m := range varRef.FindAllStringSubmatch(a, -1) {
				if !vars[m[1]] {
					t.Errorf("merge arg %q uses undefined $(%s)", a, m[1])
				}
			}
		}
		if x.Image != c.Image {
			t.Errorf("merge container %s image %q, load image %q", x.Name, x.Image, c.Image)
		}
	}
}

func show(p *int) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(*p)
}

// quantity parses the Kubernetes quantities the manifests use (m, Ki/Mi/Gi, k/M/G, plain).
func quantity(s string) (float64, error) {
	for _, u := range []struct {
		suffix string
		mul    float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"m", 1e-3}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f * u.mul, err
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("quantity %q: %w", s, err)
	}
	return f, nil
}
