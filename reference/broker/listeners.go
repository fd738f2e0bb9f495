package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// connectTimeout bounds the time from accept to CONNECT. mochi sets no deadline
// before CONNECT, so a silent connection would otherwise live (and block Close) forever.
const connectTimeout = 10 * time.Second

// connTracker records a listener's live connections so Close can end all of them,
// including those still waiting for CONNECT, and wait for their goroutines.
type connTracker struct {
	mu      sync.Mutex
	closed  bool
	serving bool
	done    chan struct{} // closed when Serve returns, if it ran
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// startServing reports whether Serve may run (false once Close has begun).
func (t *connTracker) startServing() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.serving = true
	t.done = make(chan struct{})
	return true
}

func (t *connTracker) serveDone() { close(t.done) }

func (t *connTracker) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// add tracks c; false (and c must be closed) once Close has begun.
func (t *connTracker) add(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if t.conns == nil {
		t.conns = make(map[net.Conn]struct{})
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	return true
}

// remove ends tracking of c once its goroutine is done with it.
func (t *connTracker) remove(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	t.wg.Done()
}

// shutdown marks the listener closed; it reports whether Serve had started.
func (t *connTracker) shutdown() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	return t.serving
}

// closeAllAndWait closes every tracked connection and waits for their goroutines
// and, if it ran, for Serve.
func (t *connTracker) closeAllAndWait(served bool) {
	t.mu.Lock()
	conns := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	t.wg.Wait()
	if served {
		<-t.done
	}
}

// tcpListener is a mochi listener on a TCP socket (TLS when tlsConf is set) that
// tracks its connections and gives each connectTimeout to send CONNECT.
type tcpListener struct {
	id         string
	ln         net.Listener
	tlsConf    *tls.Config
	log        *slog.Logger
	disconnect func(listenerID string) // ends this listener's MQTT sessions; see Broker.disconnectListener
	t          connTracker
}

var _ listeners.Listener = (*tcpListener)(nil)

func newTCPListener(id string, ln net.Listener, tlsConf *tls.Config) *tcpListener {
	return &tcpListener{id: id, ln: ln, tlsConf: tlsConf, log: slog.New(slog.DiscardHandler)}
}

// ID returns the listener's mochi ID.
func (l *tcpListener) ID() string { return l.id }

// Address returns the bound host:port.
func (l *tcpListener) Address() string { return l.ln.Addr().String() }

// Protocol is "tcp", or "tls" with TLS.
func (l *tcpListener) Protocol() string {
	if l.tlsConf != nil {
		return "tls"
	}
	return "tcp"
}

// Init takes mochi's logger; the socket is already bound.
func (l *tcpListener) Init(log *slog.Logger) error {
	if log != nil {
		l.log = log
	}
	return nil
}

// Serve accepts connections until Close, handing each to mochi in its own goroutine.
func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	if !l.t.startServing() {
		return
	}
	defer l.t.serveDone()
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.t.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (e.g. out of file descriptors): back off as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed; retrying", "error", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if l.tlsConf != nil {
			c = tls.Server(c, l.tlsConf)
		}
		if !l.t.add(c) {
			_ = c.Close()
			return
		}
		_ = c.SetDeadline(time.Now().Add(connectTimeout)) // mochi replaces it after CONNECT
		go func() {
			defer l.t.remove(c)
			if err := establish(l.id, c); err != nil {
				l.log.Debug("connection ended", "error", err, "remote", c.RemoteAddr().String())
			}
		}()
	}
}

// Close stops accepting, disconnects this listener's clients, closes any remaining
// connection and waits for every goroutine of this listener. mochi's CloseFn is not
// used: it can deadlock (see Broker.disconnectListener).
func (l *tcpListener) Close(listeners.CloseFn) {
	served := l.t.shutdown()
	_ = l.ln.Close()
	if l.disconnect != nil {
		l.disconnect(l.id)
	}
	l.t.closeAllAndWait(served)
}

// closeSocket releases the socket of a listener that never served.
func (l *tcpListener) closeSocket() { _ = l.ln.Close() }

// wsListener serves MQTT over WebSocket at WSPath. mochi's own WebSocket listener
// offers only the subprotocol "mqtt"; Paho JS 1.0.x (rtcomm.js) asks for "mqttv3.1"
// and browsers drop a connection whose subprotocol is not echoed.
type wsListener struct {
	id         string
	ln         net.Listener
	tlsConf    *tls.Config
	log        *slog.Logger
	http       *http.Server
	upgrader   websocket.Upgrader
	establish  listeners.EstablishFn
	disconnect func(listenerID string) // ends this listener's MQTT sessions; see Broker.disconnectListener
	t          connTracker
}

var _ listeners.Listener = (*wsListener)(nil)

func newWSListener(id string, ln net.Listener, tlsConf *tls.Config) *wsListener {
	l := &wsListener{id: id, ln: ln, tlsConf: tlsConf, log: slog.New(slog.DiscardHandler)}
	l.upgrader = websocket.Upgrader{
		// Server preference order; a client asking for either gets it echoed. BRK-008
		Subprotocols: []string{"mqtt", "mqttv3.1"},
		// rtcomm web apps are served from anywhere; authorization is MQTT's job.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return l
}

// ID returns the listener's mochi ID.
func (l *wsListener) ID() string { return l.id }

// Address returns the bound host:port.
func (l *wsListener) Address() string { return l.ln.Addr().String() }

// Protocol is "ws", or "wss" with TLS.
func (l *wsListener) Protocol() string {
	if l.tlsConf != nil {
		return "wss"
	}
	return "ws"
}

// Init takes mochi's logger and prepares the HTTP server.
func (l *wsListener) Init(log *slog.Logger) error {
	if log != nil {
		l.log = log
	}
	l.http = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: connectTimeout,
		IdleTimeout:       connectTimeout, // plain HTTP keep-alive connections (404s)
		ErrorLog:          slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
	}
	return nil
}

// Serve runs the HTTP server until Close.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.t.mu.Lock()
	l.establish = establish
	l.t.mu.Unlock()
	if !l.t.startServing() {
		return
	}
	defer l.t.serveDone()
	ln := l.ln
	if l.tlsConf != nil {
		ln = tls.NewListener(ln, l.tlsConf)
	}
	if err := l.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("websocket listener stopped", "error", err, "listener", l.id)
	}
}

// ServeHTTP upgrades requests for WSPath and hands the connection to mochi; the
// handler returns when the MQTT connection ends. Other paths get 404.
func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != WSPath {
		http.NotFound(w, r)
		return
	}
	ws, err := l.upgrader.Upgrade(w, r, nil) // on error it has answered the request
	if err != nil {
		l.log.Debug("websocket upgrade failed", "error", err, "remote", r.RemoteAddr)
		return
	}
	c := newWSConn(ws)
	if !l.t.add(c) {
		_ = c.Close()
		return
	}
	defer l.t.remove(c)
	_ = c.SetDeadline(time.Now().Add(connectTimeout)) // mochi replaces it after CONNECT
	l.t.mu.Lock()
	establish := l.establish
	l.t.mu.Unlock()
	if err := establish(l.id, c); err != nil {
		l.log.Debug("connection ended", "error", err, "remote", r.RemoteAddr, "subprotocol", ws.Subprotocol())
	}
}

// Close stops the HTTP server, disconnects this listener's clients, closes any
// remaining connection and waits for every goroutine of this listener. mochi's
// CloseFn is not used: it can deadlock (see Broker.disconnectListener).
func (l *wsListener) Close(listeners.CloseFn) {
	served := l.t.shutdown()
	if l.http != nil {
		_ = l.http.Close() // hijacked (upgraded) connections are ours to close
	}
	_ = l.ln.Close()
	if l.disconnect != nil {
		l.disconnect(l.id)
	}
	l.t.closeAllAndWait(served)
}

// closeSocket releases the socket of a listener that never served.
func (l *wsListener) closeSocket() { _ = l.ln.Close() }

// errTextFrame: MQTT over WebSocket must use binary frames (MQTT 3.1.1 §6).
var errTextFrame = errors.New("websocket: text frame received; MQTT needs binary frames")

// wsConn adapts a WebSocket to the byte stream mochi reads: messages are read back to
// back (an MQTT packet may span messages, or a message hold several packets), and
// each Write is one binary message.
type wsConn struct {
	net.Conn // the underlying connection: addresses and read deadlines
	ws       *websocket.Conn
	r        io.Reader // the message being read; nil between messages

	wmu       sync.Mutex
	wdeadline atomic.Value // time.Time, applied under wmu before each write
	closeOnce sync.Once
	closeErr  error
}

func newWSConn(ws *websocket.Conn) *wsConn {
	c := &wsConn{Conn: ws.UnderlyingConn(), ws: ws}
	c.wdeadline.Store(time.Time{})
	return c
}

// Read reads the payload of binary messages as one stream.
func (c *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue // empty or finished message: go on with the next one
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// gorilla applies its own write deadline to every frame; it is set here, under
	// the write lock, because gorilla's SetWriteDeadline is not safe beside writes.
	_ = c.ws.SetWriteDeadline(c.wdeadline.Load().(time.Time))
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// SetDeadline sets the read and write deadlines.
func (c *wsConn) SetDeadline(t time.Time) error {
	c.wdeadline.Store(t)
	return c.ws.SetReadDeadline(t)
}

// SetReadDeadline sets the read deadline.
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline for later writes.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wdeadline.Store(t)
	return nil
}

// Close sends a WebSocket close frame (best effort, briefly) and closes the connection.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(100*time.Millisecond))
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}
