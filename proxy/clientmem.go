package proxy

import (
	"errors"
	"slices"
)

// The client-memory budget (Config.MaxMemoryClients, Redis's
// maxmemory-clients): every connection accounts the read buffer that holds
// its partial commands and the arguments its MULTI has queued. When a
// buffer is about to grow past the budget, the connections holding the most
// are disconnected, largest first, until the rest fits; idle connections
// (no more than the initial buffer) are never chosen.

// errClientEvicted ends a connection chosen by the client-memory budget.
var errClientEvicted = errors.New("disconnected: client memory over MaxMemoryClients")

// account adds delta bytes to the connection's and the server's client
// memory. A growth that takes the total over the budget first disconnects the
// largest connections; it returns errClientEvicted when this connection is
// one of them (its buffer must then not grow).
func (c *conn) account(delta int64) error {
	c.mem.Add(delta)
	total := c.s.clientMem.Add(delta)
	limit := c.s.cfg.MaxMemoryClients
	if delta > 0 && limit > 0 && total > limit {
		c.s.evictClients(limit)
	}
	if c.evicted.Load() {
		return errClientEvicted
	}
	return nil
}

// evictClients disconnects the connections holding the most client memory
// until the total is within limit. Memory of connections already being
// closed counts as freed.
func (s *Server) evictClients(limit int64) {
	s.evictMu.Lock()
	defer s.evictMu.Unlock()
	total := s.clientMem.Load()
	conns := s.clients()
	candidates := conns[:0]
	for _, c := range conns {
		if c.evicted.Load() {
			total -= c.mem.Load()
		} else if c.mem.Load() > minBuf {
			candidates = append(candidates, c)
		}
	}
	slices.SortFunc(candidates, func(a, b *conn) int { return int(b.mem.Load() - a.mem.Load()) })
	for _, c := range candidates {
		if total <= limit {
			return
		}
		m := c.mem.Load()
		c.evicted.Store(true)
		total -= m
		s.stats.evictedClients.Add(1)
		s.evictLog.Warn(s.log, "client disconnected: client memory over --maxmemory-clients", "client", c.id,
			"addr", c.nc.RemoteAddr().String(), "client_memory", m, "total", total+m, "limit", limit,
			"evicted_total", s.stats.evictedClients.Load())
		c.nc.Close() // its goroutine's read fails; close() then releases its memory
	}
}

// dropTx ends a MULTI, releasing the memory of its queued arguments.
func (c *conn) dropTx() {
	if c.tx != nil && c.tx.bytes > 0 {
		_ = c.account(-int64(c.tx.bytes))
	}
	c.tx = nil
}
