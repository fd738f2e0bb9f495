package watch_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/fixtures"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/watch"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// callObservations is one call as the in-broker hook sees it: the parties' messages to the
// connector and the connector's relays (START_SESSION, PRANSWER, RESPONSE, 4 candidates each
// way, STOP_SESSION): 26 publishes. offer and answer are the session's payloads (JSON).
func callObservations(i int, offer, answer string) []watch.Observation {
	sid, tid := fmt.Sprintf("s-%d", i), fmt.Sprintf("t-%d", i)
	conn := "/rtcomm/connector/rtcconn-x"
	pub := func(client, topic, body string) watch.Observation {
		return watch.Observation{Topic: topic, Payload: []byte(body), Client: client}
	}
	out := []watch.Observation{
		pub("alice", "/rtcomm/connector/alice", `{"rtcommVer":"v1.0.0","method":"START_SESSION","fromTopic":"/rtcomm/alice","transID":"`+tid+`","sigSessID":"`+sid+`","toEndpointID":"bob","protocols":["webrtc"],"payload":`+offer+`}`),
		pub("rtcconn-x", "/rtcomm/bob/alice", `{"rtcommVer":"v1.0.0","method":"START_SESSION","fromTopic":"`+conn+`","transID":"`+tid+`","sigSessID":"`+sid+`","protocols":["webrtc"],"payload":`+offer+`}`),
		pub("bob", conn+"/bob", `{"rtcommVer":"v1.0.0","method":"PRANSWER","fromTopic":"/rtcomm/bob","transID":"`+tid+`","sigSessID":"`+sid+`","protocols":["webrtc"],"holdTimeout":20}`),
		pub("rtcconn-x", "/rtcomm/alice/bob", `{"rtcommVer":"v1.0.0","method":"PRANSWER","fromTopic":"`+conn+`","transID":"`+tid+`","sigSessID":"`+sid+`","protocols":["webrtc"],"holdTimeout":20}`),
		pub("bob", conn+"/bob", `{"rtcommVer":"v1.0.0","method":"RESPONSE","fromTopic":"/rtcomm/bob","orig":"START_SESSION","result":"SUCCESS","transID":"`+tid+`","sigSessID":"`+sid+`","protocols":["webrtc"],"payload":`+answer+`}`),
		pub("rtcconn-x", "/rtcomm/alice/bob", `{"rtcommVer":"v1.0.0","method":"RESPONSE","fromTopic":"`+conn+`","orig":"START_SESSION","result":"SUCCESS","transID":"`+tid+`","sigSessID":"`+sid+`","protocols":["webrtc"],"payload":`+answer+`}`),
	}
	for k := 0; k < 4; k++ {
		for _, p := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
			cand := fmt.Sprintf(`{"webrtc":{"type":"icecandidate","candidate":{"candidate":"candidate:%d 1 udp 2122260223 192.0.2.1 5000%d typ host","sdpMid":"0","sdpMLineIndex":0}}}`, k, k)
			out = append(out,
				pub(p[0], conn+"/"+p[0], `{"rtcommVer":"v1.0.0","method":"MESSAGE","fromTopic":"/rtcomm/`+p[0]+`","sigSessID":"`+sid+`","payload":`+cand+`}`),
				pub("rtcconn-x", "/rtcomm/"+p[1]+"/"+p[0], `{"rtcommVer":"v1.0.0","method":"MESSAGE","fromTopic":"`+conn+`","sigSessID":"`+sid+`","payload":`+cand+`}`))
		}
	}
	return append(out,
		pub("alice", "/rtcomm/connector/alice", `{"rtcommVer":"v1.0.0","method":"STOP_SESSION","fromTopic":"/rtcomm/alice","sigSessID":"`+sid+`","reason":"done"}`),
		pub("rtcconn-x", "/rtcomm/bob/alice", `{"rtcommVer":"v1.0.0","method":"STOP_SESSION","fromTopic":"`+conn+`","sigSessID":"`+sid+`","reason":"done"}`))
}

// The synthetic call is judged clean and the relay checks run on it (so the benchmark
// measures the real path).
func TestSyntheticCallIsClean(t *testing.T) {
	c := watch.New(watch.Config{Profile: spec.ProfileClient, FromStart: true, ConnectorClients: []string{"rtcconn-x"}})
	for _, o := range callObservations(1, tinyOffer, tinyAnswer) {
		o.Time = time.Now()
		for _, f := range c.Observe(o) {
			t.Errorf("%s", f)
		}
	}
	if n := c.Passes()[watch.ConnectorParticipant]["ICE-004"]; n != 8 {
		t.Fatalf("expected 8 candidate relays checked, actual %d", n)
	}
}

// Payloads of a minimal session: the checker's own cost, without SDP to validate.
const (
	tinyOffer  = `{"webrtc":{"type":"offer","sdp":"v=0\r\n"}}`
	tinyAnswer = `{"webrtc":{"type":"answer","sdp":"v=0\r\n"}}`
)

// BenchmarkCheckerPerCall: the checker's CPU cost per call (26 publishes), as load --check
// and serve --check pay it on the broker's publish path, with a minimal SDP and with the
// Chrome audio+video offer and answer a load run sends by default (5-6 KB each: validating
// them is most of the cost). State of finished calls is kept for a minute, so memory grows
// with calls here: B/op. judge=checker+broker adds the broker judge that serve --check and
// load --check run in the embedded broker: each publish read, noted, accepted and delivered
// once to a subscriber of the path, which acknowledges it (the retained store's calls
// included; rtcomm's call messages are not retained); judge=checker+broker+ledger adds the
// publish ledger (each PUBLISH's read stamped and its fate judged: published, the
// subscriber matched), as they run it since.
func BenchmarkCheckerPerCall(b *testing.B) {
	offer, err := fixtures.OfferPayload("chrome-av-offer")
	if err != nil {
		b.Fatal(err)
	}
	answer, err := fixtures.AnswerPayload("chrome-av-answer")
	if err != nil {
		b.Fatal(err)
	}
	for _, sdp := range []struct{ name, offer, answer string }{
		{"sdp=tiny", tinyOffer, tinyAnswer},
		{"sdp=chrome-av", string(offer), string(answer)},
	} {
		for _, judge := range []string{"checker", "checker+broker", "checker+broker+ledger"} {
			b.Run(sdp.name+"/judge="+judge, func(b *testing.B) {
				c := watch.New(watch.Config{Profile: spec.ProfileClient, FromStart: true, ConnectorClients: []string{"rtcconn-x"}})
				var br *watch.Broker
				pubConn, subConn := new(int), new(int)
				ledger := judge == "checker+broker+ledger"
				fate := watch.Fate{Matched: []watch.MatchedClient{{Client: "sub"}}}
				if judge != "checker" {
					br = watch.NewBroker("")
					br.SetRetention(watch.Retention{Quota: 256 << 10, Total: 64 << 20})
					br.Connected(subConn, "sub", true, nil)
					br.Subscribing("sub", []string{"/rtcomm/#"})
					br.Subscribed("sub", []string{"/rtcomm/#"}, []byte{1})
				}
				now := time.Now()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					call := callObservations(i, sdp.offer, sdp.answer) // a fresh session each time, as in a load run
					b.StartTimer()
					for _, o := range call {
						o.Time = now
						if fs := c.Observe(o); len(fs) > 0 {
							b.Fatalf("the benchmark's call is not clean: %v", fs[0])
						}
						if br == nil {
							continue
						}
						br.PublishRead(pubConn, o.Client, "", o.Topic, len(o.Payload), false)
						if ledger {
							br.StampRead(pubConn)
						}
						br.Published(o, 1)
						br.PublishAccepted(pubConn, "", o, false)
						if ledger {
							if fs := br.PublishFate(pubConn, o.Client, o.Topic, o.Payload, 1, fate, now); len(fs) > 0 {
								b.Fatalf("the benchmark's publish is not clean: %v", fs[0])
							}
						}
						if fs := br.Delivered("sub", o.Topic, o.Payload, 1, false, now); len(fs) > 0 {
							b.Fatalf("the benchmark's delivery is not clean: %v", fs[0])
						}
						br.PacketRead(subConn, "sub") // its PUBACK
					}
				}
			})
		}
	}
}
