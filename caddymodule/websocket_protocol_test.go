package caddymodule_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// rawWS is a WebSocket client that writes frames byte for byte as a test
// says, to see how the server answers what a library would never send.
type rawWS struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// dialRawWS opens a WebSocket over a plain socket, checking the handshake
// answer of RFC 6455 §1.3.
func dialRawWS(t *testing.T, base, path string) *rawWS {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, host)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake answer: %d %v", resp.StatusCode, resp.Header)
	}
	return &rawWS{t: t, conn: conn, r: r}
}

// write sends one frame: first is its first byte (FIN, opcode), and the
// payload is masked unless told not to be.
func (c *rawWS) write(first byte, payload string, masked bool) {
	c.t.Helper()
	b := []byte{first, byte(len(payload))}
	p := []byte(payload)
	if masked {
		b[1] |= 0x80
		mask := [4]byte{0x12, 0x34, 0x56, 0x78}
		b = append(b, mask[:]...)
		for i := range p {
			p[i] ^= mask[i&3]
		}
	}
	if _, err := c.conn.Write(append(b, p...)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read reads one server frame, which must be final and unmasked; io.EOF
// when the server closed the socket.
func (c *rawWS) read() (byte, []byte, error) {
	var head [2]byte
	if _, err := io.ReadFull(c.r, head[:]); err != nil {
		return 0, nil, err
	}
	if head[0]&0xF0 != 0x80 || head[1]&0x80 != 0 {
		c.t.Fatalf("server frame header %x: want final, no reserved bits, unmasked", head)
	}
	length := uint64(head[1] & 0x7F)
	switch length {
	case 126:
		var ext [2]byte
		io.ReadFull(c.r, ext[:])
		length = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		io.ReadFull(c.r, ext[:])
		length = binary.BigEndian.Uint64(ext[:])
	}
	payload := make([]byte, length)
	_, err := io.ReadFull(c.r, payload)
	return head[0] & 0x0F, payload, err
}

// next reads the next frame that is not a ping, answering none.
func (c *rawWS) next() (byte, []byte) {
	c.t.Helper()
	for {
		op, payload, err := c.read()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if op != opPing {
			return op, payload
		}
	}
}

// expectEvent reads a text frame and checks its envelope's event.
func (c *rawWS) expectEvent(event string) {
	c.t.Helper()
	op, payload := c.next()
	var e envelope
	if op != opText || json.Unmarshal(payload, &e) != nil || e.Event != event {
		c.t.Fatalf("got op %#x %s, want a %s notice", op, payload, event)
	}
}

// closeCode reads until the server's close frame and returns its code, or
// -1 if the server closed the socket without one.
func (c *rawWS) closeCode() int {
	c.t.Helper()
	for {
		op, payload, err := c.read()
		if err != nil {
			return -1
		}
		if op == opClose {
			if len(payload) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(payload))
		}
	}
}

func TestWebSocketAnswersPingsBetweenFragments(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, direct string) {
		srv := startWSCaddy(t, direct, nil)
		c := dialRawWS(t, srv.baseURL, "/comet/sub/frag")
		c.expectEvent("comet.subscribed")

		c.write(0x80|opPing, "hello?", true)
		if op, payload := c.next(); op != opPong || string(payload) != "hello?" {
			t.Fatalf("ping answered with op %#x %q, want a pong echoing it", op, payload)
		}
		// One request in three fragments, a ping between them (RFC 6455
		// §5.4: control frames may be injected in a fragmented message).
		c.write(opText, `{"op":"subscribe",`, true)
		c.write(0x80|opPing, "mid", true)
		c.write(0x0, `"channel":`, true)
		c.write(0x80|0x0, `"more"}`, true)
		if op, payload := c.next(); op != opPong || string(payload) != "mid" {
			t.Fatalf("ping between fragments answered with op %#x %q", op, payload)
		}
		c.expectEvent("comet.subscribed")
		publishText(t, srv.baseURL, "more", "after fragments")
		c.expectEvent("")
	})
}

func TestWebSocketProtocolViolationsCloseWith1002(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, direct string) {
		srv := startWSCaddy(t, direct, nil)
		for _, tc := range []struct {
			name    string
			first   byte
			payload string
			masked  bool
		}{
			{"unmasked frame", 0x80 | opText, `{"op":"ack"}`, false},
			{"unknown opcode", 0x80 | 0x3, "?", true},
			{"fragmented ping", opPing, "x", true},
		} {
			c := dialRawWS(t, srv.baseURL, "/comet/sub/rude")
			c.expectEvent("comet.subscribed")
			c.write(tc.first, tc.payload, tc.masked)
			code := c.closeCode()
			// coder/websocket, on the handler path, drops a client that
			// sends an unmasked frame without a close frame.
			if code != 1002 && !(direct == "off" && code == -1) {
				t.Errorf("%s: close %d, want 1002", tc.name, code)
			}
		}
		publishText(t, srv.baseURL, "rude", "the hub goes on")
	})
}

func TestWebSocketClientCloseIsAnsweredAndReleasesTheSubscriber(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, direct string) {
		srv := startWSCaddy(t, direct, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := mustDialWS(t, ctx, srv.baseURL+"/comet/sub/leaving")
		c.expect("comet.subscribed:leaving")
		// Close returns nil only once the server answered with its own
		// close frame (RFC 6455 §5.5.1).
		if err := c.conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
			t.Fatalf("close handshake: %v", err)
		}
		waitUntilUnsubscribed(t, srv.baseURL, "leaving", "the closed WebSocket")
	})
}

func TestWebSocketPeerThatIgnoresPingsIsCut(t *testing.T) {
	eachDeliveryPath(t, func(t *testing.T, direct string) {
		srv := startWSCaddy(t, direct, nil, "HEARTBEAT=1s")
		// A client that answers every ping stays through three of them.
		alive := dialRawWS(t, srv.baseURL, "/comet/sub/alive")
		alive.expectEvent("comet.subscribed")
		for pings := 0; pings < 3; {
			op, payload, err := alive.read()
			if err != nil {
				t.Fatalf("a client answering pings was cut: %v", err)
			}
			if op == opPing {
				pings++
				alive.write(0x80|opPong, string(payload), true)
			}
		}
		publishText(t, srv.baseURL, "alive", "still here")
		alive.expectEvent("")

		// One that answers none is cut after a ping goes unanswered.
		mute := dialRawWS(t, srv.baseURL, "/comet/sub/mute")
		mute.expectEvent("comet.subscribed")
		pinged := false
		for {
			op, _, err := mute.read()
			if err != nil {
				if !pinged {
					t.Fatalf("cut before any ping: %v", err)
				}
				break // cut: end of input or reset
			}
			pinged = pinged || op == opPing
		}
	})
}
