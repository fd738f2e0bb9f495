package endpoint_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/endpoint"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// BenchmarkEndpointMemory reports what one idle, connected, registered endpoint
// costs (Go heap, goroutine stacks, process RSS), then what one established session
// adds, for 1,000 endpoints. Figures, not assertions. The broker runs out of process
// (mosquitto) when installed so that its memory is not counted; otherwise the
// embedded broker's share is included (the broker=embedded metric says so).
//
//	go test -run '^$' -bench EndpointMemory -benchtime 1x ./reference/endpoint/
func BenchmarkEndpointMemory(b *testing.B) {
	const n = 1000
	url, embedded := benchBroker(b)
	for i := 0; i < b.N; i++ {
		measureEndpoints(b, url, n, embedded)
	}
}

func benchBroker(b *testing.B) (url string, embedded bool) {
	if os.Getenv("RTCOMM_ENDPOINT_BROKER") != "embedded" {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
			return startMosquitto(b), false
		}
	}
	return startEmbedded(b), true
}

type memSample struct {
	heap, stack, rss uint64
	goroutines       int
}

func sampleMem() memSample {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapAlloc, stack: ms.StackInuse, rss: rssBytes(), goroutines: runtime.NumGoroutine()}
}

// rssBytes reads the process's resident set from /proc (0 where there is none).
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

func perEach(after, before uint64, n int) float64 {
	return (float64(after) - float64(before)) / float64(n)
}

func measureEndpoints(b *testing.B, url string, n int, embedded bool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := newPath()
	eps := make([]*endpoint.Endpoint, n)
	defer func() { closeAll(eps) }()
	before := sampleMem()
	for i := range eps {
		e, err := endpoint.Dial(ctx, endpoint.Config{BrokerURL: url, TopicPath: path, ID: fmt.Sprintf("ep%05d", i),
			Direct: true, NoWill: os.Getenv("RTCOMM_ENDPOINT_NOWILL") == "1"})
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		eps[i] = e
		if err := e.Register(ctx); err != nil {
			b.Fatal(err)
		}
	}
	idle := sampleMem()

	// Half call the other half; each call is answered and stays up.
	sessions := make([]*endpoint.Session, 0, n)
	for i := 0; i < n; i += 2 {
		call, err := eps[i].Call(ctx, eps[i+1].ID(), sdp(spec.SDPOffer), endpoint.WithTopic(eps[i+1].Address()))
		if err != nil {
			b.Fatal(err)
		}
		inv := invite(b, ctx, eps[i+1])
		s, err := inv.Accept(ctx, sdp(spec.SDPAnswer))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := call.Await(ctx); err != nil {
			b.Fatal(err)
		}
		sessions = append(sessions, call, s)
	}
	inCall := sampleMem()
	runtime.KeepAlive(sessions)

	heap := perEach(idle.heap, before.heap, n)
	stack := perEach(idle.stack, before.stack, n)
	b.ReportMetric(heap, "heap-B/endpoint")
	b.ReportMetric(stack, "stack-B/endpoint")
	b.ReportMetric(heap+stack, "total-B/endpoint")
	b.ReportMetric(perEach(idle.rss, before.rss, n), "rss-B/endpoint")
	b.ReportMetric(float64(idle.goroutines-before.goroutines)/float64(n), "goroutines/endpoint")
	b.ReportMetric(perEach(inCall.heap, idle.heap, len(sessions)), "session-heap-B")
	// Processing the call's messages grows paho's goroutine stacks: counted here, once.
	b.ReportMetric(perEach(inCall.stack, idle.stack, len(sessions)), "session-stack-B")
	if embedded {
		b.ReportMetric(1, "broker=embedded")
	}
}

// closeAll closes endpoints a few at a time (Close waits for paho's DISCONNECT).
func closeAll(eps []*endpoint.Endpoint) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, e := range eps {
		if e == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			e.Close()
			<-sem
		}()
	}
	wg.Wait()
}
