package framework

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
)

// Secure identities of the embedded target: three endpoints, a call controller (ID-015)
// and the connector.
var embeddedSecureRoles = []string{"alice", "bob", "mallory", "operator"}

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
	t.TCP, t.embedded = b.TCPURL(), b
	if d.Claims(FeatureWebSocket) {
		t.WS = b.WSURL()
	}
	if !d.Claims(FeatureSecure) {
		return nil
	}
	tag := RandomTag(6)
	creds := map[string]string{}
	for _, role := range embeddedSecureRoles {
		id := Identity{ID: role + "-" + tag, Username: role + "-" + tag, Password: "pw-" + RandomTag(12)}
		creds[id.Username] = id.Password
		t.Identities = append(t.Identities, id)
	}
	conn := Identity{ID: "connector-" + tag, Username: "connector-" + tag, Password: "pw-" + RandomTag(12)}
	creds[conn.Username] = conn.Password
	t.ConnectorIdentity = &conn
	t.CallControllers = []string{t.Identities[len(t.Identities)-1].ID}
	sc := broker.Config{MaxPayload: maxPayload, TopicPath: d.TopicPath, Secure: true,
		Credentials: creds, ConnectorUser: conn.Username, Logger: t.Logger.With("component", "secure-broker")}
	if d.Secure != nil && d.Secure.TLS {
		dir, err := os.MkdirTemp("", "rtcomm-harness-tls-")
		if err != nil {
			return fmt.Errorf("embedded secure broker: %w", err)
		}
		t.OnClose(func() { _ = os.RemoveAll(dir) })
		pool, err := writeSelfSigned(dir)
		if err != nil {
			return fmt.Errorf("embedded secure broker: %w", err)
		}
		sc.TLSCertFile, sc.TLSKeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		t.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	sb, err := broker.Start(ctx, sc)
	if err != nil {
		return fmt.Errorf("embedded secure broker: %w", err)
	}
	t.OnClose(func() { _ = sb.Close() })
	t.SecureTCP, t.secureEmbedded = sb.TCPURL(), sb
	if d.Claims(FeatureWebSocket) {
		t.SecureWS = sb.WSURL()
	}
	t.SecurePath = d.TopicPath
	return nil
}

// writeSelfSigned writes cert.pem and key.pem into dir: a self-signed certificate for
// 127.0.0.1 and localhost, valid for a day, and returns a pool that trusts it.
func writeSelfSigned(dir string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("TLS serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "rtcomm-harness embedded secure broker"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("TLS key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("TLS key: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}
