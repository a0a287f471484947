package proxy

import (
	"context"
	"slices"
	"strings"
)

// Handler runs one command. args[0] is the command name as sent; args alias
// the connection's read buffer and must be copied to be kept after the
// handler returns. The handler writes exactly one reply to w. ctx is the
// connection's: it is cancelled when the connection closes, never by a
// graceful Shutdown while the handler runs.
type Handler func(ctx context.Context, w *Reply, args [][]byte)

// Command describes a command for the Mux and for COMMAND INFO and DOCS.
type Command struct {
	Name    string // upper-case, e.g. "SRS.DUE"
	Arity   int    // Redis convention: >0 exact arg count including the name; <0 minimum
	Role    Role   // minimum role to run it
	Summary string // one line, for COMMAND DOCS
	Syntax  string // e.g. "SRS.DUE player season [SUBJECT s] [LIMIT n] [AT ms]"
	Since   string // version that added the command
	Group   string // e.g. "srs"
	// CacheKey is the position of the key a tracking client files the
	// reply under (1 for SRS.DUE player …); 0: the reply is not cacheable.
	CacheKey int
	Handler  Handler
}

// entry is a registered command with what the dispatcher needs.
type entry struct {
	Command
	lower  string // name as Redis spells it in errors
	noAuth bool   // runs before AUTH
	inTx   bool   // runs at once inside MULTI instead of being queued
}

// Mux maps command names to commands. It starts with the connection commands
// built in (PING, HELLO, AUTH, MULTI, …). Register everything before NewServer.
type Mux struct {
	cmds   map[string]*entry
	frozen bool
	list   []*entry // sorted by name, once frozen
}

// NewMux returns a Mux holding the built-in connection commands.
func NewMux() *Mux {
	m := &Mux{cmds: make(map[string]*entry)}
	for _, b := range builtins() {
		m.add(b)
	}
	return m
}

// Handle registers c. It panics on an empty name, one longer than 64 bytes or
// with white space, a nil handler, an arity of 0, a name already registered
// (built-ins included) or after NewServer.
func (m *Mux) Handle(c Command) {
	m.add(&entry{Command: c})
}

func (m *Mux) add(e *entry) {
	switch {
	case m.frozen:
		panic("proxy: Handle " + e.Name + " after NewServer")
	case e.Name == "" || len(e.Name) > maxName || strings.ContainsFunc(e.Name, isSpaceOrControl):
		panic("proxy: Handle with invalid command name " + e.Name)
	case e.Handler == nil:
		panic("proxy: Handle " + e.Name + " with nil handler")
	case e.Arity == 0:
		panic("proxy: Handle " + e.Name + " with arity 0")
	}
	e.Name = strings.ToUpper(e.Name)
	e.lower = strings.ToLower(e.Name)
	if _, dup := m.cmds[e.Name]; dup {
		panic("proxy: command " + e.Name + " registered twice")
	}
	m.cmds[e.Name] = e
}

// Commands returns every command, built-ins included, sorted by name.
func (m *Mux) Commands() []Command {
	out := make([]Command, 0, len(m.cmds))
	for _, e := range m.sorted() {
		out = append(out, e.Command)
	}
	return out
}

// freeze stops registrations; NewServer calls it.
func (m *Mux) freeze() {
	m.frozen = true
	m.list = m.sorted()
}

// sorted returns the entries sorted by name.
func (m *Mux) sorted() []*entry {
	if m.list != nil {
		return m.list
	}
	out := make([]*entry, 0, len(m.cmds))
	for _, e := range m.cmds {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// maxName is the longest command name.
const maxName = 64

// lookup finds a command by name in any case. scratch holds the upper-cased
// name so that the map lookup does not allocate.
func (m *Mux) lookup(name []byte, scratch *[maxName]byte) *entry {
	if len(name) > len(scratch) {
		return nil
	}
	up := scratch[:len(name)]
	for i, c := range name {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		up[i] = c
	}
	return m.cmds[string(up)]
}
