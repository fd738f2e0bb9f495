package faulty

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rtcomm-harness/rtcomm-harness/scenarios"
)

// mqttOnlyWebSocket serves MQTT over WebSocket at /mqtt in front of the broker's TCP
// listener, offering only the subprotocol "mqtt": a listener written for MQTT 3.1.1 clients
// that never echoes rtcomm.js's "mqttv3.1" (browsers then abort the connection).
func mqttOnlyWebSocket(t *scenarios.Target) error {
	u, err := url.Parse(t.TCP)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}, CheckOrigin: func(*http.Request) bool { return true }}
	var wg sync.WaitGroup
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/mqtt" {
			http.NotFound(w, r)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		tcp, err := net.Dial("tcp", u.Host)
		if err != nil {
			_ = ws.Close()
			return
		}
		wg.Add(1)
		go func() { // broker -> client
			defer wg.Done()
			defer ws.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := tcp.Read(buf)
				if n > 0 && ws.WriteMessage(websocket.BinaryMessage, buf[:n]) != nil {
					return
				}
				if err != nil {
					return
				}
			}
		}()
		defer tcp.Close()
		for { // client -> broker
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if _, err := tcp.Write(b); err != nil {
				return
			}
		}
	})}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return
		}
	}()
	t.OnClose(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
		wg.Wait()
	})
	t.WS = "ws://" + ln.Addr().String() + "/mqtt"
	return nil
}
