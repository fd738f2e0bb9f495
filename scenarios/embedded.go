package scenarios

import (
	"context"
	"fmt"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
)

// Secure identities of the embedded target: three endpoints and the connector.
var embeddedSecureRoles = []string{"alice", "bob", "mallory"}

// openEmbedded starts the in-process reference brokers for mode embedded: an open one for
// every scenario, and a secured one (authentication + identity ACLs) for the secure area.
func openEmbedded(ctx context.Context, t *Target) error {
	d := &t.Decl
	maxPayload := d.Limits.MaxPayload
	if maxPayload == 0 {
		maxPayload = broker.DefaultMaxPayload
	}
	b, err := broker.Start(ctx, broker.Config{MaxPayload: maxPayload, TopicPath: d.TopicPath,
		Logger: t.Logger.With("component", "broker")})
	if err != nil {
		return fmt.Errorf("embedded broker: %w", err)
	}
	t.OnClose(func() { _ = b.Close() })
	t.TCP = b.TCPURL()
	if d.Claims(FeatureWebSocket) {
		t.WS = b.WSURL()
	}
	if !d.Claims(FeatureSecure) {
		return nil
	}
	tag := randomTag(6)
	creds := map[string]string{}
	for _, role := range embeddedSecureRoles {
		id := Identity{ID: role + "-" + tag, Username: role + "-" + tag, Password: "pw-" + randomTag(12)}
		creds[id.Username] = id.Password
		t.Identities = append(t.Identities, id)
	}
	conn := Identity{ID: "connector-" + tag, Username: "connector-" + tag, Password: "pw-" + randomTag(12)}
	creds[conn.Username] = conn.Password
	t.ConnectorIdentity = &conn
	sb, err := broker.Start(ctx, broker.Config{MaxPayload: maxPayload, TopicPath: d.TopicPath, Secure: true,
		Credentials: creds, ConnectorUser: conn.Username, Logger: t.Logger.With("component", "secure-broker")})
	if err != nil {
		return fmt.Errorf("embedded secure broker: %w", err)
	}
	t.OnClose(func() { _ = sb.Close() })
	t.SecureTCP = sb.TCPURL()
	if d.Claims(FeatureWebSocket) {
		t.SecureWS = sb.WSURL()
	}
	t.SecurePath = d.TopicPath
	return nil
}
