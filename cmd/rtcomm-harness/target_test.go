package main

import (
	"testing"

	"github.com/spf13/cobra"
)

// TestTargetFlagsShared: load and capacity declare the target flags with the same help
// and the documented defaults, and soak's --topic-path matches theirs.
func TestTargetFlagsShared(t *testing.T) {
	t.Parallel()
	g := &globalFlags{}
	cmds := map[string]*cobra.Command{"load": newLoadCmd(g), "capacity": newCapacityCmd(g)}
	defaults := map[string]map[string]string{
		"load":     {"broker": "", "no-connector": "false", "topic-path": "/rtcomm/", "username": "", "password": "", "id-prefix": "lg-"},
		"capacity": {"broker": "", "no-connector": "false", "topic-path": "/rtcomm/", "username": "", "password": "", "id-prefix": "cap-"},
	}
	for name, c := range cmds {
		for flag, def := range defaults[name] {
			f := c.Flags().Lookup(flag)
			if f == nil {
				t.Errorf("%s: no --%s", name, flag)
				continue
			}
			if f.DefValue != def {
				t.Errorf("%s --%s default %q, want %q", name, flag, f.DefValue, def)
			}
			if other := cmds["load"].Flags().Lookup(flag); other != nil && other.Usage != f.Usage {
				t.Errorf("--%s help differs: %s %q, load %q", flag, name, f.Usage, other.Usage)
			}
		}
	}
	soak := newSoakCmd(g).Flags().Lookup("topic-path")
	if soak == nil || soak.DefValue != "/rtcomm/" || soak.Usage != cmds["load"].Flags().Lookup("topic-path").Usage {
		t.Errorf("soak --topic-path: %+v", soak)
	}
}
