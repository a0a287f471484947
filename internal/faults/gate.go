package faults

import (
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gateMode is the position of a Gate.
type gateMode int32

const (
	gateOpen    gateMode = iota // forwarding
	gateCut                     // dead peer: connections dropped, new ones closed at once
	gateStalled                 // hung peer: connections kept, nothing gets through
)

// Gate is a TCP proxy for outage tests with three positions. Open forwards.
// Cut drops every connection and closes new ones as soon as they are
// accepted, like a server that died (the client sees EOF at once). Stall
// keeps every connection open but lets no byte through in either direction,
// and holds new connections without ever answering, like a hung server or a
// black-holed network: only the client's own timeouts end its calls.
//
// While it is not open the Gate records when each connection was attempted,
// so a test can see a client's background probes without sleeping.
type Gate struct {
	ln     net.Listener
	target string
	mode   atomic.Int32 // gateMode; written under mu, read by the pipes without it

	mu       sync.Mutex
	conns    map[net.Conn]bool
	attempts []time.Time
}

// Proxy is the Gate under the name the MariaDB outage tests use: a TCP proxy
// that can be cut (a dead server), stalled (a hung one) and restored.
type Proxy = Gate

// NewProxy starts an open proxy to target on 127.0.0.1:0; it stops with the
// test. It is NewGate.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	return NewGate(t, target)
}

// NewGate starts an open Gate to target on 127.0.0.1:0; it stops with the test.
func NewGate(t testing.TB, target string) *Gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &Gate{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go g.serve()
	t.Cleanup(func() {
		ln.Close()
		g.Cut()
	})
	return g
}

// Addr is the Gate's listen address.
func (g *Gate) Addr() string { return g.ln.Addr().String() }

func (g *Gate) current() gateMode { return gateMode(g.mode.Load()) }

func (g *Gate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		switch g.current() {
		case gateCut:
			g.attempts = append(g.attempts, time.Now())
			g.mu.Unlock()
			c.Close()
			continue
		case gateStalled:
			g.attempts = append(g.attempts, time.Now())
			g.conns[c] = true
			g.mu.Unlock()
			go g.hold(c)
			continue
		}
		g.mu.Unlock()
		go g.connect(c)
	}
}

// connect dials the target for an accepted connection and pipes the two.
// It runs on its own goroutine so a slow dial never delays other accepts.
func (g *Gate) connect(c net.Conn) {
	up, err := net.DialTimeout("tcp", g.target, time.Second)
	if err != nil {
		c.Close()
		return
	}
	g.mu.Lock()
	switch g.current() {
	case gateOpen:
	case gateStalled: // stalled while dialling: hold the client, drop the target
		g.conns[c] = true
		g.mu.Unlock()
		up.Close()
		g.hold(c)
		return
	default: // cut while dialling
		g.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	g.conns[c], g.conns[up] = true, true
	g.mu.Unlock()
	go g.pipe(c, up)
	g.pipe(up, c)
}

// hold reads and drops what a connection accepted during a stall sends,
// until it is closed.
func (g *Gate) hold(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	c.Close()
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// pipe copies src to dst, dropping what it reads while the Gate is stalled.
func (g *Gate) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && g.current() != gateStalled {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	g.mu.Lock()
	delete(g.conns, dst)
	delete(g.conns, src)
	g.mu.Unlock()
}

func (g *Gate) closeAll() {
	for c := range g.conns {
		c.Close()
	}
}

// Cut drops every connection and closes new ones as they arrive.
func (g *Gate) Cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mode.Store(int32(gateCut))
	g.closeAll()
}

// Stall stops every byte in both directions and holds new connections
// unanswered (accepted, read and discarded); connections stay open. Restore
// ends it.
func (g *Gate) Stall() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mode.Store(int32(gateStalled))
}

// Restore forwards again. Connections that lived through a stall lost bytes,
// so they are closed; clients reconnect.
func (g *Gate) Restore() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.current() == gateStalled {
		g.closeAll()
	}
	g.mode.Store(int32(gateOpen))
}

// Conns is the number of connections the Gate holds open (both ends of a
// forwarded connection count).
func (g *Gate) Conns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Attempts returns when connections were attempted while the Gate was cut or
// stalled, oldest first.
func (g *Gate) Attempts() []time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.attempts)
}
