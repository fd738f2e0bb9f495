package endpoint_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// TestNoGoroutineLeak dials 50 endpoints, runs calls that end every way (stopped by
// either side, rejected, timed out, still up at Close), closes everything and
// expects the goroutine count back at its baseline. Not parallel: it counts the
// whole process's goroutines.
func TestNoGoroutineLeak(t *testing.T) {
	url := startBroker(t) // the broker's own goroutines belong to the baseline
	path := newPath()
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()

	func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		const n = 50
		eps := make([]*endpoint.Endpoint, n)
		for i := range eps {
			e, err := endpoint.Dial(ctx, endpoint.Config{BrokerURL: url, TopicPath: path, ID: fmt.Sprintf("ep%02d", i),
				Direct: true, PranswerTimeout: 300 * time.Millisecond, InviteTimeout: 300 * time.Millisecond,
				EventBuffer: 2, NoWill: os.Getenv("RTCOMM_ENDPOINT_NOWILL") == "1"})
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			defer e.Close()
			if err := e.Register(ctx); err != nil {
				t.Fatal(err)
			}
			eps[i] = e
		}
		t.Logf("goroutines: %d before, %d with %d endpoints connected (%.1f each: paho's, plus the broker's when embedded)",
			base, runtime.NumGoroutine(), n, float64(runtime.NumGoroutine()-base)/n)
		var live []*endpoint.Session
		for i := 0; i < n; i += 2 {
			caller, callee := eps[i], eps[i+1]
			call, err := caller.Call(ctx, callee.ID(), sdp(spec.SDPOffer))
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			inv := invite(t, ctx, callee)
			mode := (i / 2) % 5
			if mode == 3 { // never answered: both ends time out
				if _, err := call.Await(ctx); !errors.Is(err, endpoint.ErrTimeout) {
					t.Fatalf("call %d: expected ErrTimeout, actual %v", i, err)
				}
				waitDone(t, ctx, inv.Session(), callee.ID())
				continue
			}
			if mode == 2 {
				if err := inv.Reject(ctx, "no"); err != nil {
					t.Fatal(err)
				}
				if _, err := call.Await(ctx); err == nil {
					t.Fatalf("call %d: expected a rejection, actual success", i)
				}
				continue
			}
			s, err := inv.Accept(ctx, sdp(spec.SDPAnswer))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := call.Await(ctx); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			// More candidates than EventBuffer, never read: the overflow path.
			for k := 0; k < 6; k++ {
				if err := call.SendCandidate(ctx, cand(k)); err != nil {
					t.Fatal(err)
				}
				if err := s.SendCandidate(ctx, cand(k)); err != nil {
					t.Fatal(err)
				}
			}
			switch mode {
			case 0:
				err = call.Stop(ctx, "caller hangs up")
			case 1:
				err = s.Stop(ctx, "callee hangs up")
			case 4:
				live = append(live, call, s) // ended by Close
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range eps {
			if err := e.Close(); err != nil {
				t.Errorf("close %s: %v", e.ID(), err)
			}
		}
		for _, s := range live {
			select {
			case <-s.Done():
			default:
				t.Errorf("session %s: expected ended by Close, actual %s", s.ID(), s.State())
			}
		}
		for _, e := range eps {
			if n := e.Stats().ActiveSessions; n != 0 {
				t.Errorf("%s: expected no sessions in the table after Close, actual %d", e.ID(), n)
			}
		}
	}()

	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got > base {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("goroutines: expected back to the baseline %d, actual %d; stacks:\n%s", base, got, firstStacks(string(buf), 30))
	}
}

func firstStacks(all string, n int) string {
	parts := strings.Split(all, "\n\n")
	if len(parts) > n {
		parts = parts[:n]
	}
	return strings.Join(parts, "\n\n")
}
