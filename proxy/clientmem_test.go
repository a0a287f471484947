package proxy

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// partial sends the start of a command with one big argument: the header
// announces size bytes and only sent of them follow, so the server buffers
// the command and waits for the rest.
func (c *rawConn) partial(size, sent int) {
	c.t.Helper()
	c.send("*2\r\n$4\r\nECHO\r\n$" + strconv.Itoa(size) + "\r\n" + strings.Repeat("x", sent))
}

// closed reports whether the server closed the connection within d.
func (c *rawConn) closed(d time.Duration) bool {
	c.nc.SetReadDeadline(time.Now().Add(d))
	defer c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1)
	_, err := c.nc.Read(buf)
	return err != nil && !strings.Contains(err.Error(), "timeout")
}

// TestClientMemoryBudget: connections each holding a big partial command
// fit until their total passes MaxMemoryClients; then the largest are
// disconnected (with a log line, counted in INFO), the others and new small
// clients keep working, and the total stays within the budget.
func TestClientMemoryBudget(t *testing.T) {
	t.Parallel()
	// 44 MiB: room for one completing 8 MiB command, whose buffer may
	// double to 16 MiB while the other three hold 8 MiB each (40 MiB), so
	// the test does not depend on how the kernel splits the reads.
	const budget = 44 << 20
	s := startServer(t, Config{MaxMemoryClients: budget, MaxBulk: 32 << 20})
	memory := func() int64 { return s.clientMem.Load() }

	// Four connections holding 8 MiB partial commands: 32 MiB, within budget.
	var small []*rawConn
	for range 4 {
		c := s.dial(t)
		c.partial(8<<20, 1<<20)
		small = append(small, c)
	}
	waitFor(t, func() bool { return memory() >= 4*(8<<20) })
	// One connection announcing 20 MiB: the total would pass 44 MiB, and
	// it is the largest, so it goes.
	big := s.dial(t)
	big.partial(20<<20, 1<<20)
	if !big.closed(5 * time.Second) {
		t.Fatalf("the connection holding the most (20 MiB) was not disconnected; client memory %d of %d", memory(), budget)
	}
	for i, c := range small {
		if c.closed(100 * time.Millisecond) {
			t.Fatalf("connection %d (8 MiB) was disconnected, though evicting the 20 MiB one was enough", i)
		}
	}
	waitFor(t, func() bool { return memory() <= budget })

	// The 8 MiB commands complete and are answered.
	rest := strings.Repeat("x", 7<<20) + "\r\n"
	for i, c := range small {
		c.send(rest)
		if got := c.read(); !strings.HasPrefix(got, "$8388608\r\n") {
			t.Fatalf("connection %d: reply %.40q", i, got)
		}
	}
	// Six connections at 8 MiB each (48 MiB): the largest are cut until the
	// rest fits, and a small client is still served throughout.
	var held []*rawConn
	for range 6 {
		c := s.dial(t)
		c.partial(8<<20, 1<<20)
		held = append(held, c)
	}
	waitFor(t, func() bool { return memory() <= budget && s.stats.evictedClients.Load() >= 2 })
	alive := 0
	for _, c := range held {
		if !c.closed(100 * time.Millisecond) {
			alive++
		}
	}
	if alive < 3 || alive > 5 {
		t.Errorf("%d of 6 connections holding 8 MiB survived a 44 MiB budget (with 4 idle ones), want 3-5", alive)
	}
	p := s.dial(t)
	if got := p.do("PING"); got != "+PONG\r\n" {
		t.Fatalf("PING from a new small client: %q", got)
	}
	info := p.do("INFO")
	if !strings.Contains(info, "evicted_clients:"+strconv.FormatInt(s.stats.evictedClients.Load(), 10)) ||
		!strings.Contains(info, "maxmemory_clients:"+strconv.Itoa(budget)) {
		t.Errorf("INFO lacks evicted_clients/maxmemory_clients: %q", info)
	}
	if !strings.Contains(s.logs.String(), "client disconnected: client memory over --maxmemory-clients") {
		t.Errorf("no log line for the evictions:\n%s", s.logs.String())
	}
	t.Logf("evicted %d connections; client memory %d of %d bytes", s.stats.evictedClients.Load(), memory(), budget)
}

// TestClientMemoryMultiCounted: the arguments a MULTI queues count too, and
// EXEC or DISCARD gives them back.
func TestClientMemoryMultiCounted(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{MaxMemoryClients: 64 << 20})
	c := s.dial(t)
	base := s.clientMem.Load()
	c.do("MULTI")
	arg := strings.Repeat("y", 1<<20)
	for range 4 {
		if got := c.do("ECHO", arg); got != "+QUEUED\r\n" {
			t.Fatalf("queue ECHO: %q", got)
		}
	}
	if got := s.clientMem.Load() - base; got < 4<<20 {
		t.Fatalf("client memory grew by %d with 4 MiB queued in MULTI", got)
	}
	c.do("DISCARD")
	waitFor(t, func() bool { return s.clientMem.Load()-base < 4<<20 })
}

// TestClientMemoryReleasedOnClose: a closed connection's memory is given back.
func TestClientMemoryReleasedOnClose(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{})
	c := s.dial(t)
	c.partial(900<<10, 1024) // under the default MaxBulk of 1 MiB: buffered
	waitFor(t, func() bool { return s.clientMem.Load() >= 900<<10 })
	c.nc.Close()
	waitFor(t, func() bool { return s.clientMem.Load() == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
