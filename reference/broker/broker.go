// Package broker is the embedded MQTT broker of the reference target: mochi-mqtt v2
// with the listeners and limits rtcomm needs.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Config configures the embedded broker. Zero values are loopback defaults.
type Config struct {
	TCPAddr    string // default "127.0.0.1:0" (random port)
	Logger     *slog.Logger
}

// Broker is a running embedded broker.
type Broker struct {
	srv     *mqtt.Server
	tcpAddr string
}

// Start starts the broker and returns once its listeners accept connections.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.TCPAddr == "" {
		cfg.TCPAddr = "127.0.0.1:0"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: log})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("broker: allow hook: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.TCPAddr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen tcp %s: %w", cfg.TCPAddr, err)
	}
	b := &Broker{srv: srv, tcpAddr: ln.Addr().String()}
	tcp := listeners.NewNet("tcp", ln)
	if err := srv.AddListener(tcp); err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: add tcp listener: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return nil, errors.Join(fmt.Errorf("broker: serve: %w", err), srv.Close())
	}
	return b, nil
}

// TCPAddr is the host:port of the TCP listener.
func (b *Broker) TCPAddr() string { return b.tcpAddr }

// TCPURL is the tcp:// URL of the TCP listener.
func (b *Broker) TCPURL() string { return "tcp://" + b.tcpAddr }

// Close stops the listeners and disconnects every client.
func (b *Broker) Close() error { return b.srv.Close() }
