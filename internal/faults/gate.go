package faults

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// gateMode is the position of a Gate.
type gateMode int

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

	mu       sync.Mutex
	mode     gateMode
	conns    map[net.Conn]bool
	attempts []time.Time
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

func (g *Gate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		switch g.mode {
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
		up, err := net.DialTimeout("tcp", g.target, time.Second)
		if err != nil {
			c.Close()
			continue
		}
		g.mu.Lock()
		if g.mode != gateOpen { // changed while dialling
			g.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		g.conns[c], g.conns[up] = true, true
		g.mu.Unlock()
		go g.pipe(c, up)
		go g.pipe(up, c)
	}
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
		if n > 0 {
			g.mu.Lock()
			stalled := g.mode == gateStalled
			g.mu.Unlock()
			if !stalled {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
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
	g.mode = gateCut
	g.closeAll()
}

// Stall stops every byte in both directions and holds new connections
// unanswered; connections stay open.
func (g *Gate) Stall() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mode = gateStalled
}

// Restore forwards again. Connections that lived through a stall lost bytes,
// so they are closed; clients reconnect.
func (g *Gate) Restore() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mode == gateStalled {
		g.closeAll()
	}
	g.mode = gateOpen
}

// Attempts returns when connections were attempted while the Gate was cut or
// stalled, oldest first.
func (g *Gate) Attempts() []time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.attempts)
}
