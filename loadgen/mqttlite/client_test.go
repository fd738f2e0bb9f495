package mqttlite_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/mqttlite"
	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/extbroker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

func embedded(t *testing.T) string {
	t.Helper()
	b, err := broker.Start(context.Background(), broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.TCPURL()
}

// brokers are the two the load generator is run against: the embedded reference broker
// (mochi) and mosquitto (skipped when not installed).
func brokers(t *testing.T) map[string]func(*testing.T) string {
	return map[string]func(*testing.T) string{
		"embedded":  embedded,
		"mosquitto": func(t *testing.T) string { return extbroker.MosquittoForTest(t).TCP },
	}
}

func dial(t *testing.T, ctx context.Context, o mqttlite.Options) *mqttlite.Client {
	t.Helper()
	c, err := mqttlite.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Messages from several goroutines sharing one connection (their writes batched) arrive
// complete and, per publisher, in order, at QoS 0 and 1, including payloads larger than the
// read buffer; a QoS 1 subscription is acknowledged so the broker keeps delivering.
func TestPublishSubscribeOrdered(t *testing.T) {
	t.Parallel()
	for name, start := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			const pubs, per = 8, 200
			for _, qos := range []byte{0, 1} {
				path := fmt.Sprintf("/t-%s-%d/", strings.ReplaceAll(t.Name(), "/", "-"), qos)
				sub := dial(t, ctx, mqttlite.Options{Options: mqttc.Options{BrokerURL: url}})
				var mu sync.Mutex
				next := map[string]int{}
				var bad []string
				all := make(chan struct{})
				n := 0
				err := sub.Subscribe(ctx, path+"inbox/#", qos, func(m mqttc.Message) {
					mu.Lock()
					defer mu.Unlock()
					from := m.Topic[strings.LastIndexByte(m.Topic, '/')+1:]
					var i int
					if _, err := fmt.Sscanf(string(m.Payload[:8]), "%08d", &i); err != nil || i != next[from] || len(m.Payload) != size(i) {
						bad = append(bad, fmt.Sprintf("%s: expected #%d (%d bytes), actual %.8q (%d bytes)", from, next[from], size(next[from]), m.Payload, len(m.Payload)))
					}
					next[from]++
					if n++; n == pubs*per {
						close(all)
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				pub := dial(t, ctx, mqttlite.Options{Options: mqttc.Options{BrokerURL: url}})
				var wg sync.WaitGroup
				for p := range pubs {
					wg.Go(func() {
						for i := range per {
							b := bytes.Repeat([]byte{'x'}, size(i))
							copy(b, fmt.Sprintf("%08d", i))
							if err := pub.Publish(ctx, fmt.Sprintf("%sinbox/p%d", path, p), qos, false, b); err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				select {
				case <-all:
				case <-ctx.Done():
					mu.Lock()
					t.Fatalf("QoS %d: received %d of %d messages", qos, n, pubs*per)
				}
				mu.Lock()
				if len(bad) > 0 {
					t.Fatalf("QoS %d: %d messages out of order or altered, first: %s", qos, len(bad), bad[0])
				}
				mu.Unlock()
			}
		})
	}
}

// size of message i: mostly small, every 50th larger than the 2 KB read buffer and the
// 5.6 KB SDP, one over 64 KB (the size a broker must carry for rtcomm).
func size(i int) int {
	switch {
	case i == 7:
		return 70_000
	case i%50 == 3:
		return 9_000
	}
	return 16 + i%300
}

// Kill drops the socket: the broker publishes the will. Close sends DISCONNECT: it does not.
func TestKillFiresWillCloseDoesNot(t *testing.T) {
	t.Parallel()
	for name, start := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			path := "/t-will-" + name + "/"
			wills := make(chan string, 4)
			mon := dial(t, ctx, mqttlite.Options{Options: mqttc.Options{BrokerURL: url}})
			if err := mon.Subscribe(ctx, path+"#", 0, func(m mqttc.Message) { wills <- m.Topic + "=" + string(m.Payload) }); err != nil {
				t.Fatal(err)
			}
			for _, who := range []string{"closed", "killed"} {
				lost := make(chan error, 1)
				c, err := mqttlite.Dial(ctx, mqttlite.Options{Options: mqttc.Options{BrokerURL: url,
					Will:             &mqttc.Will{Topic: path + who, Payload: []byte("gone")},
					OnConnectionLost: func(err error) { lost <- err }}})
				if err != nil {
					t.Fatal(err)
				}
				if who == "killed" {
					c.Kill()
				} else {
					c.Close()
				}
				if !errors.Is(c.Err(), mqttlite.ErrClosed) {
					t.Fatalf("%s: Err() expected ErrClosed, actual %v", who, c.Err())
				}
				if err := c.Publish(ctx, path+"x", 0, false, nil); !errors.Is(err, mqttlite.ErrClosed) {
					t.Fatalf("%s: publish after the end: expected ErrClosed, actual %v", who, err)
				}
				select {
				case err := <-lost:
					t.Fatalf("%s: reported as a lost connection: %v", who, err)
				case <-time.After(50 * time.Millisecond):
				}
			}
			select {
			case w := <-wills:
				if w != path+"killed=gone" {
					t.Fatalf("expected the killed client's will, actual %q", w)
				}
			case <-ctx.Done():
				t.Fatal("no will published after Kill")
			}
			select {
			case w := <-wills:
				t.Fatalf("unexpected message %q (Close must not fire the will)", w)
			case <-time.After(300 * time.Millisecond):
			}
		})
	}
}

// A broker that goes away is reported once to OnConnectionLost with ErrConnectionLost, and
// a QoS 1 publish waiting for its PUBACK fails instead of hanging.
func TestConnectionLost(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(context.Background(), broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lost := make(chan error, 2)
	c := dial(t, ctx, mqttlite.Options{Options: mqttc.Options{BrokerURL: b.TCPURL(), OnConnectionLost: func(err error) { lost <- err }}})
	b.Close()
	select {
	case err := <-lost:
		if !errors.Is(err, mqttlite.ErrConnectionLost) {
			t.Fatalf("expected ErrConnectionLost, actual %v", err)
		}
	case <-ctx.Done():
		t.Fatal("connection loss not reported")
	}
	if err := c.Publish(ctx, "/t/x", 1, false, []byte("x")); !errors.Is(err, mqttlite.ErrConnectionLost) {
		t.Fatalf("publish after the loss: expected ErrConnectionLost, actual %v", err)
	}
	select {
	case err := <-lost:
		t.Fatalf("loss reported twice (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
}

// fakeBroker accepts one connection, reads CONNECT, answers CONNACK with code and then
// runs serve on the connection (nil: reads and discards).
func fakeBroker(t *testing.T, code byte, serve func(net.Conn, *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		if _, err := readRaw(r); err != nil {
			return
		}
		if _, err := conn.Write([]byte{0x20, 2, 0, code}); err != nil {
			return
		}
		if serve != nil {
			serve(conn, r)
			return
		}
		for {
			if _, err := readRaw(r); err != nil {
				return
			}
		}
	}()
	return "tcp://" + ln.Addr().String()
}

// readRaw reads one packet and returns its type byte.
func readRaw(r *bufio.Reader) (byte, error) {
	hb, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	n, mul := 0, 1
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n += int(b&127) * mul
		if b&128 == 0 {
			break
		}
		mul *= 128
	}
	_, err = r.Discard(n)
	return hb, err
}

// A refused CONNECT is an error naming the return code.
func TestConnackRefused(t *testing.T) {
	t.Parallel()
	url := fakeBroker(t, 5, nil)
	_, err := mqttlite.Dial(context.Background(), mqttlite.Options{Options: mqttc.Options{BrokerURL: url}})
	if err == nil || !strings.Contains(err.Error(), "return code 5 (not authorized)") {
		t.Fatalf("expected a refusal naming code 5, actual %v", err)
	}
}

// Keepalive: PINGREQs on a quiet connection keep it up while the broker answers them; a
// broker that stops answering ends the connection with a keepalive error.
func TestKeepalive(t *testing.T) {
	t.Parallel()
	const ka = 200 * time.Millisecond
	var pings sync.WaitGroup
	pings.Add(3)
	answering := fakeBroker(t, 0, func(conn net.Conn, r *bufio.Reader) {
		n := 0
		for {
			hb, err := readRaw(r)
			if err != nil {
				return
			}
			if hb == 0xC0 { // PINGREQ
				if n++; n <= 3 {
					pings.Done()
				}
				if _, err := conn.Write([]byte{0xD0, 0}); err != nil {
					return
				}
			}
		}
	})
	lost := make(chan error, 1)
	c := dial(t, context.Background(), mqttlite.Options{Options: mqttc.Options{BrokerURL: answering, KeepAlive: ka,
		OnConnectionLost: func(err error) { lost <- err }}})
	pings.Wait()
	select {
	case err := <-lost:
		t.Fatalf("connection ended although the broker answered every PINGREQ: %v", err)
	case <-time.After(2 * ka):
	}
	if c.Err() != nil {
		t.Fatal(c.Err())
	}

	silent := fakeBroker(t, 0, nil)
	dial(t, context.Background(), mqttlite.Options{Options: mqttc.Options{BrokerURL: silent, KeepAlive: ka,
		OnConnectionLost: func(err error) { lost <- err }}})
	select {
	case err := <-lost:
		if !errors.Is(err, mqttlite.ErrConnectionLost) || !strings.Contains(err.Error(), "PINGREQ") {
			t.Fatalf("expected a keepalive error, actual %v", err)
		}
	case <-time.After(20 * ka):
		t.Fatal("a broker that never answers PINGREQ was not detected")
	}
}

// Options this client does not implement are refused with a clear error.
func TestUnsupported(t *testing.T) {
	t.Parallel()
	for _, o := range []mqttc.Options{
		{BrokerURL: "ws://127.0.0.1:1/mqtt"},
		{BrokerURL: "ssl://127.0.0.1:1"},
		{BrokerURL: "tcp://127.0.0.1:1", AutoReconnect: true},
		{BrokerURL: "tcp://127.0.0.1:1", ProtocolVersion: 5},
	} {
		if _, err := mqttlite.Dial(context.Background(), mqttlite.Options{Options: o}); !errors.Is(err, mqttlite.ErrUnsupported) {
			t.Errorf("%+v: expected ErrUnsupported, actual %v", o, err)
		}
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"/rtcomm/a/#", "/rtcomm/a/b", true},
		{"/rtcomm/a/#", "/rtcomm/a", true},
		{"/rtcomm/a/#", "/rtcomm/ab/c", false},
		{"/rtcomm/+/x", "/rtcomm/a/x", true},
		{"/rtcomm/+/x", "/rtcomm/a/y", false},
		{"/rtcomm/+", "/rtcomm/a/b", false},
		{"/rtcomm/a", "/rtcomm/a", true},
		{"/rtcomm/a", "/rtcomm/a/b", false},
		{"#", "/x", true},
		{"/rtcomm/sphere/#", "/rtcomm/sphere/g/id", true},
		{"a/+/+", "a/b/", true},
	} {
		if got := mqttlite.Match(c.filter, c.topic); got != c.want {
			t.Errorf("Match(%q, %q): expected %v, actual %v", c.filter, c.topic, c.want, got)
		}
	}
}
