package broker_test

import (
	"fmt"
	"sync"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestRetainedScanRacesNoWrite runs retained writes (presence DOCUMENTs and their clears)
// against wildcard scans (a new `sphere/#` subscriber) on one topic tree. Under -race it
// fails on an unpatched mochi v2.7.9 (mochi-mqtt/server#200); the patched copy in
// mochipatch/ takes the root lock in Messages (see mochipatch/PATCHED.md).
func TestRetainedScanRacesNoWrite(t *testing.T) {
	idx := mqtt.NewTopicsIndex()
	const writers, rounds = 4, 300
	// Inboxes subscribed on the presence topics keep their particles in the tree, as
	// presence monitors do, so writes land on particles the scan is reading.
	for w := 0; w < writers; w++ {
		for i := 0; i < 7; i++ {
			idx.Subscribe("monitor", packets.Subscription{Filter: fmt.Sprintf("/rtcomm/sphere/ep-%d-%d", w, i)})
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				topic := fmt.Sprintf("/rtcomm/sphere/ep-%d-%d", w, i%7)
				pk := packets.Packet{TopicName: topic, Payload: []byte(`{"method":"DOCUMENT"}`)}
				pk.FixedHeader.Retain = true
				idx.RetainMessage(pk)
				pk.Payload = nil // the clean unregister: an empty retained message
				idx.RetainMessage(pk)
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < rounds*writers; i++ {
			for _, pk := range idx.Messages("/rtcomm/sphere/#") {
				if pk.TopicName == "" {
					t.Errorf("retained message without a topic")
					return
				}
			}
		}
	}()
	wg.Wait()
}
