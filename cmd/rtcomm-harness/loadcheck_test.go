package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// load --check: the reference's own load traffic gives no finding (exit 0 under
// violations<=0); with alter-ice planted in the connector the checker finds ICE-004 against
// the connector and the violations SLO fails the run (exit 1).
func TestLoadCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault string
		code  int
		req   string
	}{{"", 0, ""}, {"alter-ice:3", exitCheckBreached, "ICE-004"}} {
		t.Run("fault="+tc.fault, func(t *testing.T) {
			t.Parallel()
			o := tinyLoad(t)
			o.check, o.sloSpec, o.fault = true, "violations<=0", tc.fault
			o.rejectShare = 0
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := runLoad(ctx, o, &out, &out, false, slog.New(slog.DiscardHandler))
			// A loaded machine (or -race) can start a call late, which makes the run invalid
			// (exit 2) whatever the checker found, as runLoadValid tolerates; the findings
			// are judged all the same.
			lateOnly := exitCode(err) == exitLoadInvalid && strings.Contains(err.Error(), "late starts")
			if code := exitCode(err); code != tc.code && !lateOnly {
				t.Fatalf("expected exit %d, actual %d (%v)\n%s", tc.code, code, err, out.String())
			}
			fs := readFindingsOnly(t, filepath.Join(o.out, "check"))
			if tc.req == "" {
				if len(fs) != 0 {
					t.Fatalf("expected no finding on the reference's load, actual %v", fs)
				}
				return
			}
			for _, f := range fs {
				if f.Requirement == tc.req && strings.HasPrefix(f.Participant, "connector") {
					return
				}
			}
			t.Fatalf("expected %s blamed on the connector, actual %v", tc.req, fs)
		})
	}
}
