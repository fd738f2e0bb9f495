// Package faulty builds deliberately broken targets: the reference connector behind an MQTT
// man-in-the-middle that drops, duplicates or alters what it publishes, and a "secured"
// listener that enforces nothing. The conformance suite must catch each one by the
// requirement it breaks (faulty_test.go).
package faulty

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"
)

// MQTT control packet types the proxy looks at (MQTT 3.1.1 §2.2.1).
const (
	pktPublish = 3
	pktPuback  = 4
)

// Publish is one PUBLISH packet (MQTT 3.1.1, no properties).
type Publish struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retain   bool
	Dup      bool
	PacketID uint16
	// Delay sends this packet that long after the original (a late copy; sent at QoS 0).
	Delay time.Duration
}

// Rewrite decides what becomes of one PUBLISH the connector sends: nothing (drop), the
// packet (possibly modified), or several packets (duplicates).
type Rewrite func(p Publish) []Publish

// Proxy forwards one client's MQTT connections to a broker, rewriting the PUBLISH packets
// the client sends. It speaks plain TCP (tcp:// brokers).
type Proxy struct {
	ln       net.Listener
	upstream string
	rewrite  Rewrite
	inbound  Rewrite // nil: what the broker delivers to the client passes untouched
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
	closed   bool
}

// ProxyOption configures a Proxy.
type ProxyOption func(*Proxy)

// Inbound rewrites what the broker delivers to the client too (a connector that misreads
// its input: it never sees what the rewrite drops or changes).
func Inbound(rw Rewrite) ProxyOption { return func(p *Proxy) { p.inbound = rw } }

// NewProxy listens on a random loopback port and forwards to brokerURL (tcp://host:port).
func NewProxy(brokerURL string, rw Rewrite, opts ...ProxyOption) (*Proxy, error) {
	u, err := url.Parse(brokerURL)
	if err != nil || (u.Scheme != "tcp" && u.Scheme != "mqtt") {
		return nil, fmt.Errorf("faulty proxy: broker URL %q: want tcp://host:port", brokerURL)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faulty proxy: %w", err)
	}
	p := &Proxy{ln: ln, upstream: u.Host, rewrite: rw}
	for _, o := range opts {
		o(p)
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// URL is the tcp:// URL clients connect to instead of the broker.
func (p *Proxy) URL() string { return "tcp://" + p.ln.Addr().String() }

// Close stops the proxy and drops its connections.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = down.Close()
			continue
		}
		if !p.track(down) || !p.track(up) {
			_ = down.Close()
			_ = up.Close()
			return
		}
		var writeDown sync.Mutex // PUBACKs the proxy fakes share the client's socket
		var writeUp sync.Mutex   // late copies share the broker's socket
		p.wg.Add(2)
		go func() { // broker -> client: untouched unless an inbound rewrite is set
			defer p.wg.Done()
			defer down.Close()
			if p.inbound != nil {
				p.rewriteInbound(up, down, &writeUp, &writeDown)
				return
			}
			buf := make([]byte, 32<<10)
			for {
				n, err := up.Read(buf)
				if n > 0 {
					writeDown.Lock()
					_, werr := down.Write(buf[:n])
					writeDown.Unlock()
					if werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // client -> broker: PUBLISH rewritten
			defer p.wg.Done()
			defer up.Close()
			r := bufio.NewReaderSize(down, 64<<10)
			for {
				first, body, err := readPacket(r)
				if err != nil {
					return
				}
				if first>>4 != pktPublish {
					writeUp.Lock()
					_, err := up.Write(encodePacket(first, body))
					writeUp.Unlock()
					if err != nil {
						return
					}
					continue
				}
				pub, err := decodePublish(first, body)
				if err != nil {
					return
				}
				out := p.rewrite(pub)
				if pub.QoS == 1 && (len(out) == 0 || out[0].Delay > 0) {
					// Dropped or delayed: acknowledge it ourselves so the client's in-flight window moves on.
					writeDown.Lock()
					_, _ = down.Write([]byte{pktPuback << 4, 2, byte(pub.PacketID >> 8), byte(pub.PacketID)})
					writeDown.Unlock()
				}
				for i, q := range out {
					if (i > 0 || q.Delay > 0) && q.QoS > 0 {
						q.QoS, q.PacketID = 0, 0 // extra and late copies need no acknowledgement
					}
					if q.Delay > 0 {
						time.AfterFunc(q.Delay, func() {
							writeUp.Lock()
							defer writeUp.Unlock()
							_, _ = up.Write(encodePublish(q))
						})
						continue
					}
					writeUp.Lock()
					_, err := up.Write(encodePublish(q))
					writeUp.Unlock()
					if err != nil {
						return
					}
				}
			}
		}()
	}
}

// rewriteInbound forwards broker -> client packets, PUBLISHes through the inbound rewrite.
func (p *Proxy) rewriteInbound(up, down net.Conn, writeUp, writeDown *sync.Mutex) {
	r := bufio.NewReaderSize(up, 64<<10)
	for {
		first, body, err := readPacket(r)
		if err != nil {
			return
		}
		var out [][]byte
		if first>>4 != pktPublish {
			out = append(out, encodePacket(first, body))
		} else {
			pub, err := decodePublish(first, body)
			if err != nil {
				return
			}
			pubs := p.inbound(pub)
			if len(pubs) == 0 && pub.QoS == 1 {
				// Dropped: acknowledge it to the broker ourselves.
				writeUp.Lock()
				_, _ = up.Write([]byte{pktPuback << 4, 2, byte(pub.PacketID >> 8), byte(pub.PacketID)})
				writeUp.Unlock()
			}
			for i, q := range pubs {
				if i > 0 && q.QoS > 0 {
					q.QoS, q.PacketID = 0, 0
				}
				out = append(out, encodePublish(q))
			}
		}
		writeDown.Lock()
		for _, b := range out {
			if _, err := down.Write(b); err != nil {
				writeDown.Unlock()
				return
			}
		}
		writeDown.Unlock()
	}
}

// readPacket reads one MQTT control packet: first byte and body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return first, body, nil
}

func encodePacket(first byte, body []byte) []byte {
	out := []byte{first}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

func decodePublish(first byte, body []byte) (Publish, error) {
	p := Publish{QoS: (first >> 1) & 3, Retain: first&1 == 1, Dup: first&8 != 0}
	if len(body) < 2 {
		return p, errors.New("short PUBLISH")
	}
	tl := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+tl {
		return p, errors.New("short PUBLISH topic")
	}
	p.Topic = string(body[2 : 2+tl])
	rest := body[2+tl:]
	if p.QoS > 0 {
		if len(rest) < 2 {
			return p, errors.New("short PUBLISH packet ID")
		}
		p.PacketID = binary.BigEndian.Uint16(rest)
		rest = rest[2:]
	}
	p.Payload = append([]byte(nil), rest...)
	return p, nil
}

func encodePublish(p Publish) []byte {
	first := byte(pktPublish<<4) | p.QoS<<1
	if p.Retain {
		first |= 1
	}
	if p.Dup && p.QoS > 0 {
		first |= 8
	}
	body := make([]byte, 0, 4+len(p.Topic)+len(p.Payload))
	body = binary.BigEndian.AppendUint16(body, uint16(len(p.Topic)))
	body = append(body, p.Topic...)
	if p.QoS > 0 {
		body = binary.BigEndian.AppendUint16(body, p.PacketID)
	}
	body = append(body, p.Payload...)
	return encodePacket(first, body)
}
