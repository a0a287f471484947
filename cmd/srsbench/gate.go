package main

import (
	"io"
	"net"
	"sync"
)

// gate is a TCP proxy between the sidecar and MariaDB that the bench can cut
// (every connection closed, new ones refused) and restore: it holds the
// drain back so a backlog builds up, then lets the drain run flat out
// (System.DrainBacklog). The MariaDB baseline does not go through it.
type gate struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newGate(target string) (*gate, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &gate{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	g.wg.Go(g.serve)
	return g, nil
}

func (g *gate) addr() string { return g.ln.Addr().String() }

func (g *gate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return // closed
		}
		g.wg.Go(func() { g.pipe(c) })
	}
}

func (g *gate) pipe(c net.Conn) {
	g.mu.Lock()
	if g.cut {
		g.mu.Unlock()
		c.Close()
		return
	}
	g.mu.Unlock()
	up, err := net.Dial("tcp", g.target)
	if err != nil {
		c.Close()
		return
	}
	if !g.track(c, up) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
	g.mu.Lock()
	delete(g.conns, c)
	delete(g.conns, up)
	g.mu.Unlock()
}

// track registers both ends unless the gate was cut meanwhile.
func (g *gate) track(c, up net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cut {
		c.Close()
		up.Close()
		return false
	}
	g.conns[c], g.conns[up] = struct{}{}, struct{}{}
	return true
}

// setCut cuts (true) or restores (false) the gate.
func (g *gate) setCut(cut bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cut = cut
	if cut {
		for c := range g.conns {
			c.Close()
		}
	}
}

// close stops the gate and waits for its goroutines.
func (g *gate) close() {
	if g == nil {
		return
	}
	g.ln.Close()
	g.setCut(true)
	g.wg.Wait()
}
