//go:build linux

package direct

import (
	"errors"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/internal/wsframe"
)

// A WebSocket on the direct path is a conn like any other: messages go out
// as their shared frame header and envelope through the shard's writer.
// What differs is input. The poller does not read it; it starts a reader
// goroutine for the connection, which parses what arrived, answers control
// frames, hands messages to the Session and ends once the socket has
// nothing more to read. An idle WebSocket holds no goroutine.

// wsState is what a WebSocket conn adds to a plain stream's.
type wsState struct {
	session Session
	// Guarded by the conn's mu:
	reading bool // a reader goroutine runs
	again   bool // input arrived while it ran: read once more before ending
	// pingTick and heardTick are pool ticks: the last ping sent, the last
	// input read. No input since a ping a heartbeat old cuts the peer.
	pingTick, heardTick uint32
	closeReceived       bool // the client's close frame came
	lingering           bool // our close frame is out; waiting for the client's
	lingerTick          uint32
	// Used by the reader goroutine only:
	reader wsframe.Reader
	broken bool // the client broke the protocol: discard the rest
}

// Why a WebSocket ends, besides the hub's and a Stream's.
var (
	errPeerClosed = errors.New("client closed the WebSocket")
	errNoPong     = errors.New("no answer to a ping within a heartbeat")
)

// lingerTicks is how long a WebSocket whose close frame is out waits for
// the client's before the socket is closed anyway.
const lingerTicks = 2

// Upgrade takes over an HTTP/1.1 WebSocket handshake (RFC 6455 §4.2) on a
// plain socket: it hijacks the connection, queues the 101 answer and makes
// the session with open. Nothing is written until the session starts the
// socket (Start, by its first subscription or with no replay), so that
// subscriptions are registered before the client sees the handshake end.
// It returns false, having touched nothing, when the request cannot be
// taken (HTTP/2, TLS, a handshake to refuse): serve it in the handler,
// which answers a bad handshake properly. No extension is agreed: every
// client gets the same frames.
func (p *Pool) Upgrade(w http.ResponseWriter, r *http.Request, h *hub.Hub, held Held, s *Stream, open func(Socket) Session) bool {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !CanTake(r) || r.Method != http.MethodGet || r.Header.Get("Sec-WebSocket-Version") != "13" ||
		!headerHasToken(r.Header, "Connection", "upgrade") || !wsframe.ValidKey(key) {
		return false
	}
	c, taken := p.take(w, h, held, s, upgradeHead(w.Header(), key))
	if c == nil {
		return taken
	}
	tick := p.tick.Load()
	c.ws = &wsState{pingTick: tick, heardTick: tick, reader: wsframe.Reader{MaxMessage: s.MaxMessageSize}}
	c.ws.session = open(c)
	_ = p.watch(c, held) // on failure the socket is closed and the session told
	return true
}

// upgradeHead answers a WebSocket handshake.
func upgradeHead(header http.Header, key string) []byte {
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	writeHeaderLines(&b, header)
	b.WriteString("Upgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Accept: " + wsframe.AcceptKey(key) + "\r\n\r\n")
	return []byte(b.String())
}

// headerHasToken reports whether a comma-separated header lists token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// readBuffers lend reader goroutines their buffer for as long as they run.
var readBuffers = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// readable is the poller's news that a WebSocket has input, or its client
// finished sending: a reader goroutine takes it.
func (c *conn) readable() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.ws.reading {
		c.ws.again = true // epoll is edge-triggered: this edge must not be lost
		c.mu.Unlock()
		return
	}
	c.ws.reading = true
	c.mu.Unlock()
	if !c.pool.spawn(c.readInput) {
		c.close(hub.ErrHubClosed)
	}
}

// readInput reads until the socket would block, parsing as it goes.
func (c *conn) readInput() {
	bufp := readBuffers.Get().(*[]byte)
	defer readBuffers.Put(bufp)
	buf := *bufp
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		n, err := unix.Read(c.fd, buf)
		switch {
		case n > 0:
			c.ws.heardTick = c.pool.tick.Load()
		case errors.Is(err, unix.EAGAIN):
			if c.ws.again {
				c.ws.again = false
				c.mu.Unlock()
				continue
			}
			c.ws.reading = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		switch {
		case n > 0:
			c.consume(buf[:n])
		case errors.Is(err, unix.EINTR):
		default: // end of input, or the socket failed
			c.close(errGone)
			return
		}
	}
}

// consume parses input, unless the client broke the protocol already.
func (c *conn) consume(data []byte) {
	if c.ws.broken {
		return
	}
	err := c.ws.reader.Feed(data, c.received)
	var closeErr *wsframe.CloseError
	if errors.As(err, &closeErr) {
		c.ws.broken = true
		c.endWith(wsframe.CloseFrame(closeErr.Code, closeErr.Reason), closeErr)
	}
}

// received handles one message or control frame from the client.
func (c *conn) received(op byte, payload []byte) error {
	switch op {
	case wsframe.OpText:
		if c.endingNow() {
			return nil // a closing connection takes no more requests
		}
		c.ws.session.Receive(payload)
	case wsframe.OpBinary:
		return &wsframe.CloseError{Code: wsframe.CloseUnsupportedData, Reason: "binary frames are not accepted; send JSON text frames"}
	case wsframe.OpPing:
		c.control(wsframe.Frame(wsframe.OpPong, payload))
	case wsframe.OpClose:
		code, err := wsframe.ParseClose(payload)
		if err != nil {
			return err
		}
		c.peerClosed(code)
	}
	return nil // a pong proves the client alive, which reading did already
}

func (c *conn) endingNow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed || c.ending != nil
}

// control queues a control frame of this connection's, within the same
// limits as messages: a client that floods pings but reads nothing is cut.
func (c *conn) control(frame []byte) {
	c.mu.Lock()
	if c.closed || c.ending != nil {
		c.mu.Unlock()
		return
	}
	limitFrames, limitBytes := c.hub.QueueLimits()
	if c.frames >= limitFrames || limitBytes > 0 && c.pending+len(frame) > limitBytes {
		c.mu.Unlock()
		c.Close(hub.ErrSlowConsumer)
		return
	}
	c.appendRawLocked(frame)
	c.frames++
	c.unlockAndKick()
}

// peerClosed answers the client's close frame (RFC 6455 §5.5.1): with the
// same code, once what is queued is written; or, if ours is out already,
// by closing the socket, which ends the handshake.
func (c *conn) peerClosed(code uint16) {
	c.mu.Lock()
	c.ws.closeReceived = true
	lingering := c.ws.lingering
	c.mu.Unlock()
	if lingering {
		c.close(errPeerClosed)
		return
	}
	if code == wsframe.CloseNoStatus {
		code = wsframe.CloseNormal
	}
	c.endWith(wsframe.CloseFrame(code, ""), errPeerClosed)
}

// lingerAfterClose runs once the close frame is written. Unless the
// client's came already, the socket stops sending and waits for it, so
// that closing does not reset a connection the client has not read to
// the end. It reports whether the socket stays open to wait.
func (c *conn) lingerAfterClose() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.ws.closeReceived {
		return false
	}
	if !c.ws.lingering {
		c.ws.lingering = true
		c.ws.lingerTick = c.pool.tick.Load()
		_ = unix.Shutdown(c.fd, unix.SHUT_WR)
	}
	return true
}

// pingDue runs on every heartbeat tick: it pings the client every
// heartbeat, cuts it if it sent nothing since the last ping, and closes a
// socket that lingered long enough.
func (c *conn) pingDue() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.ws.lingering {
		over := c.pool.tick.Load()-c.ws.lingerTick >= lingerTicks
		c.mu.Unlock()
		if over {
			c.close(errPeerClosed)
		}
		return
	}
	if c.ending != nil || c.pool.waitedAtLeast(c.ws.pingTick) < c.stream.Heartbeat {
		c.mu.Unlock()
		return
	}
	if c.ws.heardTick < c.ws.pingTick {
		c.mu.Unlock()
		c.close(errNoPong)
		return
	}
	c.ws.pingTick = c.pool.tick.Load()
	c.appendRawLocked(c.stream.HeartbeatBytes)
	c.unlockAndKick()
}

var _ Socket = (*conn)(nil)
