package sim

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/loadgen/metrics"
	"github.com/rtcomm-harness/rtcomm-harness/loadgen/results"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
)

// Baseline relay shape: pairs of publisher and subscriber connections, each pair keeping at
// most baselineWindow messages in flight, so the broker (not one client) is what limits.
const (
	baselinePairs  = 4
	baselineWindow = 32
	baselineWait   = 5 * time.Second // a raw message not seen by then is lost
)

// runBaseline relays count messages with the given sizes (cycled) as raw MQTT QoS 0 from
// publishers to subscribers on the target's broker, as fast as the broker relays them.
func runBaseline(ctx context.Context, env *Env, count uint64, sizes []int) (*results.Baseline, error) {
	b := &results.Baseline{Kind: "raw_mqtt_relay"}
	if count == 0 || len(sizes) == 0 {
		b.Note = "no rtcomm messages to replay"
		return b, nil
	}
	tag := mqttc.RandomClientID("")[:8]
	h := metrics.NewHistogram()
	var hmu sync.Mutex
	var delivered, bytes atomic.Uint64
	var first, last atomic.Int64
	type pair struct {
		pub, sub *mqttc.Client
		topic    string
		credits  chan struct{}
	}
	dial := func(prefix string) (*mqttc.Client, error) {
		return mqttc.Dial(ctx, mqttc.Options{BrokerURL: env.BrokerURL(), ClientID: mqttc.RandomClientID(prefix),
			Username: env.t.Username, Password: env.t.Password})
	}
	pairs := make([]*pair, baselinePairs)
	defer func() {
		for _, p := range pairs {
			if p != nil {
				if p.pub != nil {
					p.pub.Close()
				}
				if p.sub != nil {
					p.sub.Close()
				}
			}
		}
	}()
	for i := range pairs {
		p := &pair{topic: fmt.Sprintf("lg-baseline/%s/%d", tag, i), credits: make(chan struct{}, baselineWindow)}
		pairs[i] = p
		var err error
		if p.pub, err = dial("lgbp"); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		if p.sub, err = dial("lgbs"); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		for range baselineWindow {
			p.credits <- struct{}{}
		}
		if err := p.sub.Subscribe(ctx, p.topic, 0, func(m mqttc.Message) {
			now := time.Now()
			if len(m.Payload) >= 8 {
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Payload)))
				hmu.Lock()
				_ = h.RecordValue(max(1, min(now.Sub(sent).Microseconds(), metrics.HistHighest)))
				hmu.Unlock()
			}
			delivered.Add(1)
			bytes.Add(uint64(len(m.Payload)))
			last.Store(now.UnixNano())
			select {
			case p.credits <- struct{}{}:
			default:
			}
		}); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
	}
	var sent, sentBytes atomic.Uint64
	var wg sync.WaitGroup
	first.Store(time.Now().UnixNano())
	for i, p := range pairs {
		n := count / baselinePairs
		if uint64(i) < count%baselinePairs {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 64<<10)
			for j := uint64(0); j < n; j++ {
				size := max(sizes[(int(j)*baselinePairs+i)%len(sizes)], 8)
				t := time.NewTimer(baselineWait)
				select {
				case <-p.credits:
					t.Stop()
				case <-t.C: // a lost message took its credit: go on
				case <-ctx.Done():
					t.Stop()
					return
				}
				if size > cap(buf) {
					buf = make([]byte, 0, size)
				}
				buf = buf[:size]
				binary.BigEndian.PutUint64(buf, uint64(time.Now().UnixNano()))
				msg := append([]byte(nil), buf...) // paho keeps the slice until written
				p.pub.PublishAsync(p.topic, 0, false, msg)
				sent.Add(1)
				sentBytes.Add(uint64(size))
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(baselineWait)
	for delivered.Load() < sent.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	b.Messages, b.Bytes, b.Delivered = sent.Load(), sentBytes.Load(), delivered.Load()
	if b.Messages > b.Delivered {
		b.Lost = b.Messages - b.Delivered
	}
	if l := last.Load(); l > first.Load() {
		b.DurationS = time.Duration(l - first.Load()).Seconds()
		b.Rate = float64(b.Delivered) / b.DurationS
	}
	st, err := results.NewLatencyStats(h)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	b.Latency = st
	if ctx.Err() != nil {
		b.Note = "interrupted"
	}
	return b, nil
}
