// Package proxy is the RESP connection layer of srsproxy: it accepts Redis
// clients (RESP2 and RESP3), answers the handshake every client library sends
// (HELLO, AUTH, CLIENT SETINFO, SELECT 0, INFO, COMMAND DOCS, …) the way Redis
// does, authenticates users, queues MULTI transactions and dispatches
// commands to the handlers registered in a Mux.
//
// Each connection has one goroutine. It parses every complete command it has
// read and runs them in order; when no complete command is left (or more than
// 1 MiB of replies is buffered) it calls the durability barriers the handlers
// registered with Reply.BeforeFlush and only then writes the replies. A
// failed barrier closes the connection with the replies unsent.
//
// Requests are parsed here rather than by redcon's Reader, which has no size
// limits and crashes or spins on some inputs (see reader.go); redcon encodes
// the RESP2 replies. A command over MaxArgs, MaxBulk or max(64 MiB, 2×MaxBulk)
// in total is drained without being buffered and answered with an ERR naming
// the limit; the connection stays usable. Malformed RESP (a bad length, a
// missing CRLF, a count beyond Redis's own limits of 1M arguments or 512 MiB)
// cannot be resynchronised: as in Redis the client gets "-ERR Protocol error:
// …" after the replies to the commands before it, and the connection is
// closed.
package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/srsproxy/srsproxy/internal/logx"
)

// flushAt is the size of buffered replies above which they are flushed
// before the batch ends, so that a long pipeline does not buffer unboundedly.
const flushAt = 1 << 20

// Server serves RESP clients. Create it with NewServer.
type Server struct {
	cfg   Config
	mux   *Mux
	log   *slog.Logger
	users map[string]account // nil: auth is off, everyone is admin (fixed at start)
	// accounts is the current account table, replaced whole by SetUsers.
	accounts atomic.Pointer[map[string]account]
	decoy    account // compared against for unknown users
	now      func() time.Time
	started  time.Time
	lastID   atomic.Int64
	closing  atomic.Bool
	stats    serverStats   // for INFO
	authLog  *logx.Limiter // failed-AUTH warnings, once per 10 s with a count
	evictLog *logx.Limiter // client-memory evictions, once per second with a count

	clientMem atomic.Int64 // bytes the connections hold in read buffers and MULTI queues
	evictMu   sync.Mutex   // one eviction pass at a time

	ready     chan struct{} // closed once a listener is known or never will be
	readyOnce sync.Once

	track      *trackTable   // CLIENT TRACKING registrations (tracking.go)
	stopExpire chan struct{} // closed by Shutdown: ends expireLoop
	expireDone chan struct{} // closed when expireLoop has returned

	mu    sync.Mutex
	ln    net.Listener
	conns map[*conn]struct{}
	byID  map[int64]*conn
	wg    sync.WaitGroup
}

// account is a user with a hashed password; hashes are compared so that the
// comparison takes the same time whatever the passwords' lengths.
type account struct {
	name string
	role Role
	hash [sha256.Size]byte
}

// NewServer validates cfg, applies defaults and returns a server for the
// commands of mux (the built-ins alone if mux is nil). mux must not be changed
// afterwards. It returns the error of cfg.Validate.
func NewServer(cfg Config, mux *Mux) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if mux == nil {
		mux = NewMux()
	}
	mux.freeze()
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:   cfg,
		mux:   mux,
		log:   cfg.Logger,
		now:   time.Now,
		ready: make(chan struct{}),
		conns: make(map[*conn]struct{}),
		byID:  make(map[int64]*conn),
		track: newTrackTable(),

		stopExpire: make(chan struct{}),
		expireDone: make(chan struct{}),
		decoy:      account{hash: sha256.Sum256([]byte("decoy"))},
		authLog:    logx.Every(10 * time.Second),
		evictLog:   logx.Every(time.Second),
	}
	s.started = s.now()
	if cfg.RequirePass != "" || len(cfg.Users) > 0 {
		s.users = s.accountsOf(cfg.Users)
		s.accounts.Store(&s.users)
	}
	return s, nil
}

// accountsOf builds the account table of users plus RequirePass's default user.
func (s *Server) accountsOf(users map[string]User) map[string]account {
	out := make(map[string]account, len(users)+1)
	for name, u := range users {
		acct := account{name: name, role: u.Role, hash: sha256.Sum256([]byte(u.Password))}
		if u.PasswordSHA256 != nil {
			acct.hash = *u.PasswordSHA256
		}
		out[name] = acct
	}
	if s.cfg.RequirePass != "" {
		out["default"] = account{name: "default", role: RoleAdmin, hash: sha256.Sum256([]byte(s.cfg.RequirePass))}
	}
	return out
}

// SetUsers replaces the accounts (a reloaded users file; RequirePass's
// default user stays). New logins use them at once; connections already
// authenticated keep their user until they log in again. It returns an
// error, changing nothing, for invalid users or a server started with auth
// off.
func (s *Server) SetUsers(users map[string]User) error {
	if s.users == nil {
		return errors.New("proxy: auth is off (no RequirePass or Users at start); a users file cannot be loaded later")
	}
	cfg := s.cfg
	cfg.Users = users
	if err := cfg.Validate(); err != nil {
		return err
	}
	accounts := s.accountsOf(users)
	s.accounts.Store(&accounts)
	return nil
}

// ListenAndServe listens on Config.Addr and serves until Shutdown, after
// which it returns nil. It returns the listen or accept error otherwise.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		s.readyOnce.Do(func() { close(s.ready) })
		return fmt.Errorf("listen %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown, after which it returns nil.
// It takes ownership of ln. It may be called once.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.ln != nil {
		s.mu.Unlock()
		ln.Close()
		return errors.New("proxy: Serve called twice")
	}
	s.ln = ln
	s.mu.Unlock()
	go func() {
		defer close(s.expireDone)
		s.expireLoop(s.stopExpire)
	}()
	s.readyOnce.Do(func() { close(s.ready) })
	if s.closing.Load() {
		ln.Close()
		return nil
	}
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		switch {
		case err == nil:
			backoff = 0
			s.start(nc)
		case s.closing.Load():
			return nil
		case errors.Is(err, net.ErrClosed):
			return fmt.Errorf("accept: %w", err)
		default: // such as too many open files: wait for connections to close
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Error("accept", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
		}
	}
}

// Addr returns the address the server listens on. It waits until Serve has
// its listener, and returns nil if ListenAndServe failed to listen or the
// server was shut down first.
func (s *Server) Addr() net.Addr {
	<-s.ready
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Clients returns the number of open client connections.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown stops accepting connections, lets every connection finish the
// commands it has read and flush their replies, then closes it; idle
// connections are closed at once. If ctx ends first, the remaining
// connections are closed, their contexts cancelled, and ctx.Err() returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closing.Swap(true)
	ln := s.ln
	for c := range s.conns {
		c.nc.SetReadDeadline(time.Unix(1, 0)) // wakes a connection waiting for a command
	}
	s.mu.Unlock()
	s.readyOnce.Do(func() { close(s.ready) })
	if ln != nil {
		ln.Close()
		if first {
			close(s.stopExpire)
			<-s.expireDone
		}
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
			c.cancel()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// start registers and serves a new connection. Past MaxClients it is told
// so and closed at once, as Redis does, instead of being accepted and never
// served once file descriptors run out.
func (s *Server) start(nc net.Conn) {
	s.mu.Lock()
	full := len(s.conns) >= s.cfg.MaxClients
	s.mu.Unlock()
	if full {
		s.stats.rejectedConns.Add(1)
		_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = nc.Write([]byte("-ERR max number of clients reached\r\n"))
		nc.Close()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		s:       s,
		nc:      nc,
		id:      s.lastID.Add(1),
		ctx:     ctx,
		cancel:  cancel,
		rd:      newReader(nc, s.cfg.MaxArgs, s.cfg.MaxBulk),
		created: s.now(),
	}
	c.reply = Reply{proto: 2, user: "default", c: c}
	c.rd.grow = c.account
	c.active.Store(c.created.UnixNano())
	if s.users == nil {
		c.authed, c.role = true, RoleAdmin
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		nc.Close()
		cancel()
		return
	}
	s.conns[c] = struct{}{}
	s.byID[c.id] = c
	c.mem.Store(int64(len(c.rd.buf))) // the initial buffer: accounted, never a reason to evict
	s.clientMem.Add(int64(len(c.rd.buf)))
	s.wg.Add(1)
	s.mu.Unlock()
	go c.serve()
}

// conn is one client connection. Its fields are used by its own goroutine
// only, except those under mu, which CLIENT LIST of other connections reads.
type conn struct {
	s       *Server
	nc      net.Conn
	id      int64
	ctx     context.Context
	cancel  context.CancelFunc
	rd      *reader
	reply   Reply
	created time.Time
	active  atomic.Int64 // unix nanoseconds of the last command batch
	mem     atomic.Int64 // client memory held: read buffer and MULTI arguments
	evicted atomic.Bool  // chosen by the client-memory budget; closing

	scratch  [maxName]byte
	barriers []func() error
	authed   bool
	role     Role
	tx       *transaction // inside MULTI
	quit     bool         // close once the replies are flushed

	// Client-side caching (tracking.go). track is read by the goroutines
	// delivering invalidations; the others belong to c's goroutine.
	track      atomic.Pointer[tracking] // CLIENT TRACKING session, nil when off
	caching    cachingFlag              // CLIENT CACHING for the next command
	subscribed atomic.Bool              // SUBSCRIBE __redis__:invalidate
	pushes     atomic.Bool              // others may push to c: guard writes with wmu
	ownPush    []pushMsg                // caused by c's own command: before its reply
	afterPush  []pushMsg                // for c's volatile reads: after the reply

	readDeadline time.Time    // the read deadline c wants: zero between commands (written by c, under wmu once pushes)
	woken        atomic.Bool  // a push set the read deadline in the past to wake c
	authFailures atomic.Int64 // failed AUTH attempts in a row: each waits longer

	wmu     sync.Mutex // with pushes: guards the fields below, shared with pushing goroutines
	busy    bool       // under wmu: c's goroutine is building replies (else it is woken to write pushes)
	pending []pushMsg  // under wmu: pushes queued while busy
	closed  bool       // under wmu

	mu      sync.Mutex // guards writes of the fields below and of reply.proto, reply.user
	name    string
	libName string
	libVer  string
}

// transaction is a MULTI in progress.
type transaction struct {
	queued []queued
	bytes  int  // argument bytes queued
	failed bool // a command was refused while queueing: EXEC aborts
}

type queued struct {
	e    *entry
	args [][]byte
}

func (c *conn) serve() {
	defer c.close()
	for {
		c.rd.unauth = !c.authed
		req, ok, err := c.rd.next()
		switch {
		case err != nil:
			c.reply.begin()
			c.reply.Error("ERR " + err.Error())
			c.flush()
			c.s.log.Debug("closing connection on protocol error", "client", c.id, "err", err)
			return
		case ok:
			c.handle(req)
			if c.quit {
				c.flush()
				return
			}
			if len(c.reply.b) >= flushAt && !c.flush() {
				return
			}
		default: // the batch is done
			if !c.flushIdle(true) || c.s.closing.Load() {
				return
			}
			err := c.fillWithDeadline()
			woken := err != nil && c.wokenForPushes()
			switch {
			case woken:
			case errors.Is(err, os.ErrDeadlineExceeded) && !c.s.closing.Load():
				c.reply.begin()
				c.reply.Error(fmt.Sprintf("ERR Protocol error: command incomplete for %v", c.s.cfg.PartialTimeout))
				c.flush()
				c.s.log.Debug("closing connection: half-sent command made no progress", "client", c.id, "timeout", c.s.cfg.PartialTimeout)
				return
			case err != nil:
				if !errors.Is(err, io.EOF) && !c.s.closing.Load() {
					c.s.log.Debug("read", "client", c.id, "err", err)
				}
				return
			}
			if c.pushes.Load() {
				c.wmu.Lock()
				c.busy = true
				c.wmu.Unlock()
			}
			if !woken { // a wake-up to write pushes is not the client's activity
				c.active.Store(c.s.now().UnixNano())
			}
		}
	}
}

// fillWithDeadline reads more of the client's commands. While part of a
// command has arrived, the rest must make progress within PartialTimeout;
// between commands there is no deadline.
func (c *conn) fillWithDeadline() error {
	timeout := c.s.cfg.PartialTimeout
	switch partial := c.rd.partial(); {
	case partial && time.Until(c.readDeadline) < timeout-min(time.Second, timeout/2):
		// Moved on at most once a second: a large command arrives in many reads.
		c.setReadDeadline(time.Now().Add(timeout))
	case !partial && !c.readDeadline.IsZero():
		c.setReadDeadline(time.Time{})
	}
	return c.rd.fill()
}

// setReadDeadline sets the connection's own read deadline, unless a push
// has set it in the past to wake the connection: then it is only recorded,
// for wokenForPushes to put back.
func (c *conn) setReadDeadline(d time.Time) {
	if c.pushes.Load() {
		c.wmu.Lock()
		defer c.wmu.Unlock()
	}
	c.readDeadline = d
	if !c.woken.Load() {
		_ = c.nc.SetReadDeadline(d)
	}
}

func (c *conn) close() {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	delete(c.s.byID, c.id)
	c.s.mu.Unlock()
	c.setTracking(nil)
	c.wmu.Lock()
	c.closed, c.pending = true, nil
	c.wmu.Unlock()
	c.s.clientMem.Add(-c.mem.Swap(0))
	c.nc.Close()
	c.cancel()
	c.s.wg.Done()
}

// flush runs the durability barriers, then writes the buffered replies. It
// returns false when the connection must close; after a failed barrier the
// replies are dropped unsent.
func (c *conn) flush() bool { return c.flushIdle(false) }

// flushIdle is flush; idle says the connection then waits for commands, so
// pushes from other goroutines may be written directly from then on.
func (c *conn) flushIdle(idle bool) bool {
	ok := true
	for i, wait := range c.barriers {
		if err := runBarrier(wait); err != nil {
			c.s.log.Error("durability barrier failed: closing connection without replying", "client", c.id, "err", err)
			ok = false
		}
		c.barriers[i] = nil
	}
	c.barriers = c.barriers[:0]
	if !ok {
		return false
	}
	if c.pushes.Load() {
		// Pushes queued by other goroutines go out after the replies so far.
		c.wmu.Lock()
		c.pending = c.appendPushes(c.pending)
		c.busy = !idle
		c.wmu.Unlock()
	}
	if len(c.reply.b) == 0 {
		return true
	}
	_, err := c.nc.Write(c.reply.b)
	if cap(c.reply.b) > flushAt {
		c.reply.b = nil
	} else {
		c.reply.b = c.reply.b[:0]
	}
	return err == nil
}

func runBarrier(wait func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("barrier panic: %v", r)
		}
	}()
	return wait()
}

// handle checks a request the way Redis does, in the same order (unknown
// command, arity, auth, permission), then queues or runs it.
func (c *conn) handle(req request) {
	w := &c.reply
	w.begin()
	if req.refused != "" {
		c.refuse(req.refused)
		return
	}
	e := c.s.mux.lookup(req.args[0], &c.scratch)
	mark := len(w.b)
	c.dispatch(e, req.args)
	if len(c.ownPush) > 0 || len(c.afterPush) > 0 || c.caching != (cachingFlag{}) {
		c.afterCommand(mark)
	}
}

// dispatch refuses, queues or runs a command, as handle decided.
func (c *conn) dispatch(e *entry, args [][]byte) {
	w := &c.reply
	switch {
	case e == nil:
		c.refuse(unknownCommand(args))
	case e.Arity > 0 && len(args) != e.Arity || e.Arity < 0 && len(args) < -e.Arity:
		c.refuse("ERR wrong number of arguments for '" + e.lower + "' command")
	case !c.authed && !e.noAuth:
		c.refuse("NOAUTH Authentication required.")
	case c.role < e.Role:
		c.refuse("NOPERM User " + w.user + " has no permissions to run the '" + e.lower + "' command")
	case w.proto == 2 && c.subscribed.Load() && !allowedSubscribed(e.Name):
		c.refuse("ERR Can't execute '" + e.lower + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
	case c.tx != nil && !e.inTx:
		c.enqueue(e, args)
	default:
		c.call(e, args)
	}
}

// refuse answers an error; inside MULTI it also dooms the transaction.
func (c *conn) refuse(msg string) {
	if c.tx != nil {
		c.tx.failed = true
	}
	c.reply.Error(msg)
}

// unknownCommand is Redis's error for an unknown command, quoting the
// arguments up to about 128 bytes.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.Write(args[0][:min(len(args[0]), 128)])
	b.WriteString("', with args beginning with: ")
	n := 0
	for _, a := range args[1:] {
		if n >= 128 {
			break
		}
		a = a[:min(len(a), 128-n)]
		n += len(a) + 3
		b.WriteByte('\'')
		b.Write(a)
		b.WriteString("' ")
	}
	return b.String()
}

func (c *conn) enqueue(e *entry, args [][]byte) {
	if len(c.tx.queued) >= c.s.cfg.MaxMultiQueued {
		c.refuse(fmt.Sprintf("ERR transaction has more than MaxMultiQueued %d commands; EXEC will abort", c.s.cfg.MaxMultiQueued))
		return
	}
	size := 0
	for _, a := range args {
		size += len(a)
	}
	if c.tx.bytes+size > c.s.cfg.MaxMultiBytes {
		c.refuse(fmt.Sprintf("ERR transaction holds more than MaxMultiBytes %d bytes of arguments; EXEC will abort", c.s.cfg.MaxMultiBytes))
		return
	}
	c.tx.bytes += size
	if c.account(int64(size)) != nil {
		return // disconnected by the client-memory budget
	}
	own := make([][]byte, len(args))
	buf := make([]byte, 0, size)
	for i, a := range args {
		buf = append(buf, a...)
		own[i] = buf[len(buf)-len(a) : len(buf) : len(buf)]
	}
	c.tx.queued = append(c.tx.queued, queued{e, own})
	c.reply.Simple("QUEUED")
}

// call runs a handler. A panic, or a reply that is not exactly one value,
// becomes "ERR internal error" and is logged with the command and its stack.
func (c *conn) call(e *entry, args [][]byte) {
	w := &c.reply
	mark := len(w.b)
	outer := w.begin()
	defer func() {
		c.s.stats.commands.Add(1) // after the command, as Redis counts
		if w.read.on {
			c.endRead()
		}
		if r := recover(); r != nil {
			c.s.log.Error("command panicked", "cmd", e.Name, "client", c.id, "panic", r, "stack", string(debug.Stack()))
			c.internalError(mark)
		}
		w.end(outer)
	}()
	if e.CacheKey > 0 {
		c.beginRead(e, args)
	}
	e.Handler(c.ctx, w, args)
	if !w.complete() {
		c.s.log.Error("command wrote a malformed reply", "cmd", e.Name, "client", c.id, "values", w.tops, "missing", w.open)
		c.internalError(mark)
	}
}

// internalError replaces what a handler wrote after mark with an error.
func (c *conn) internalError(mark int) {
	w := &c.reply
	w.b = w.b[:mark]
	w.begin()
	w.Error("ERR internal error")
}

// login checks a user's password in constant time and, if it matches, makes
// the connection that user.
func (c *conn) login(user string, pass []byte) bool {
	s := c.s
	if s.users == nil { // auth off: the default user takes any password
		return user == "default"
	}
	acct, found := (*s.accounts.Load())[user]
	want := acct.hash
	if !found {
		want = s.decoy.hash
	}
	got := sha256.Sum256(pass)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !found {
		s.stats.authDenied.Add(1)
		// Logged, but never more than once per interval per cause: a guessing
		// client must not turn the log into its amplifier.
		s.authLog.Warn(s.log, "authentication failed", "client", c.id, "addr", c.nc.RemoteAddr().String(),
			"user", user, "failures_total", s.stats.authDenied.Load())
		c.slowDown(authDelay(c.authFailures.Add(1)))
		return false
	}
	c.authFailures.Store(0)
	c.authed, c.role = true, acct.role
	c.mu.Lock()
	c.reply.user = acct.name
	c.mu.Unlock()
	return true
}

// authDelay is how long the n-th failed AUTH in a row waits before its
// reply: 1 ms doubling to 1 s, so one connection guesses at most about
// once a second instead of millions of times (issue 12).
func authDelay(n int64) time.Duration {
	return min(time.Millisecond<<min(n-1, 10), time.Second)
}

// slowDown holds the connection for d, or until it closes.
func (c *conn) slowDown(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ctx.Done():
	}
}

// reset is RESET: leave MULTI, go back to RESP2, forget the name and, when
// auth is on, the user.
func (c *conn) reset() {
	c.dropTx()
	c.setTracking(nil)
	c.subscribed.Store(false)
	c.caching = cachingFlag{}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reply.proto = 2
	c.name = ""
	if c.s.users != nil {
		c.authed, c.role, c.reply.user = false, RoleApp, "default"
	}
}

// info is the line of CLIENT INFO and CLIENT LIST. It has every field of
// Redis 7.2, with zeros for the statistics it does not keep: redis-py's
// client_info() fails on a missing one.
func (c *conn) info(now time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s age=%d idle=%d flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 "+
		"qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 obl=0 oll=0 omem=0 tot-mem=0 events=r "+
		"user=%s redir=-1 lib-name=%s lib-ver=%s resp=%d\n",
		c.id, c.nc.RemoteAddr(), c.nc.LocalAddr(), c.name,
		int64(now.Sub(c.created).Seconds()), int64(now.Sub(time.Unix(0, c.active.Load())).Seconds()),
		c.reply.user, c.libName, c.libVer, c.reply.proto)
}

// clients returns the open connections by id.
func (s *Server) clients() []*conn {
	s.mu.Lock()
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b *conn) int { return int(a.id - b.id) })
	return all
}
