package proxy

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
)

// RedisVersion is the Redis version INFO reports as redis_version, for
// clients that gate features on it.
const RedisVersion = "7.2.0"

// builtins are the connection commands every client may send, answered the
// way Redis answers them.
func builtins() []*entry {
	connection := func(name string, arity int, syntax, summary string, h Handler) *entry {
		return &entry{Command: Command{Name: name, Arity: arity, Syntax: syntax, Summary: summary,
			Since: "1.0.0", Group: "connection", Handler: h}}
	}
	tx := func(name, summary string, h Handler) *entry {
		return &entry{Command: Command{Name: name, Arity: 1, Syntax: name, Summary: summary,
			Since: "1.2.0", Group: "transactions", Handler: h}, inTx: true}
	}
	all := []*entry{
		connection("PING", -1, "PING [message]", "Returns PONG, or the message if one is given.", ping),
		connection("ECHO", 2, "ECHO message", "Returns the given string.", echo),
		connection("QUIT", -1, "QUIT", "Closes the connection.", quit),
		connection("RESET", 1, "RESET", "Resets the connection: leaves MULTI, back to RESP2, logs out.", reset),
		connection("AUTH", -2, "AUTH [username] password", "Authenticates the connection.", auth),
		connection("SELECT", 2, "SELECT index", "Selects the database; only 0 exists.", selectDB),
		connection("CLIENT", -2, "CLIENT ID|GETNAME|SETNAME name|SETINFO LIB-NAME|LIB-VER value|INFO|LIST|HELP",
			"Manages the connection's name and library information.", client),
		connection("HELLO", -1, "HELLO [protover [AUTH username password] [SETNAME clientname]]",
			"Handshakes: selects RESP2 or RESP3, optionally authenticates and names the connection.", hello),
		{Command: Command{Name: "INFO", Arity: -1, Syntax: "INFO [section ...]", Summary: "Returns information about the server.",
			Since: "1.0.0", Group: "server", Handler: info}},
		{Command: Command{Name: "COMMAND", Arity: -1, Syntax: "COMMAND [COUNT|LIST|INFO [name ...]|DOCS [name ...]]",
			Summary: "Returns information about the commands.", Since: "2.8.13", Group: "server", Handler: command}},
		tx("MULTI", "Starts a transaction.", multi),
		tx("EXEC", "Runs the commands queued since MULTI.", exec),
		tx("DISCARD", "Discards the commands queued since MULTI.", discard),
	}
	for _, e := range all {
		switch e.Name {
		case "AUTH", "HELLO", "QUIT", "RESET":
			e.noAuth = true
		}
		if e.Name == "QUIT" || e.Name == "RESET" {
			e.inTx = true
		}
	}
	return all
}

func ping(_ context.Context, w *Reply, args [][]byte) {
	switch len(args) {
	case 1:
		w.Simple("PONG")
	case 2:
		w.Bulk(args[1])
	default:
		w.Error("ERR wrong number of arguments for 'ping' command")
	}
}

func echo(_ context.Context, w *Reply, args [][]byte) { w.Bulk(args[1]) }

func quit(_ context.Context, w *Reply, _ [][]byte) {
	w.c.quit = true
	w.Simple("OK")
}

func reset(_ context.Context, w *Reply, _ [][]byte) {
	w.c.reset()
	w.Simple("RESET")
}

const wrongPass = "WRONGPASS invalid username-password pair or user is disabled."

func auth(_ context.Context, w *Reply, args [][]byte) {
	user, pass := "default", args[len(args)-1]
	switch {
	case len(args) > 3:
		w.Error("ERR syntax error")
		return
	case len(args) == 3:
		user = string(args[1])
	case w.c.s.users == nil:
		w.Error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return
	}
	if !w.c.login(user, pass) {
		w.Error(wrongPass)
		return
	}
	w.Simple("OK")
}

func selectDB(_ context.Context, w *Reply, args [][]byte) {
	db, err := strconv.ParseInt(string(args[1]), 10, 64)
	switch {
	case err != nil:
		w.Error("ERR value is not an integer or out of range")
	case db != 0:
		w.Error("ERR DB index is out of range")
	default:
		w.Simple("OK")
	}
}

// validAttr reports whether s may be a client name or library attribute:
// printable ASCII without spaces.
func validAttr(s []byte) bool {
	for _, c := range s {
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

const badName = "ERR Client names cannot contain spaces, newlines or special characters."

func (c *conn) setName(name string) {
	c.mu.Lock()
	c.name = name
	c.mu.Unlock()
}

var clientHelp = []string{
	"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"ID", "    Return the ID of the current connection.",
	"GETNAME", "    Return the name of the current connection.",
	"SETNAME <name>", "    Assign the name <name> to the current connection.",
	"SETINFO <LIB-NAME|LIB-VER> <value>", "    Set client library name or version.",
	"INFO", "    Return information about the current connection.",
	"LIST", "    Return information about all connections.",
	"HELP", "    Print this help.",
}

// clientArity is the argument count of each CLIENT subcommand.
var clientArity = map[string]int{"ID": 2, "GETNAME": 2, "SETNAME": 3, "SETINFO": 4, "INFO": 2, "LIST": 2, "HELP": 2}

func client(_ context.Context, w *Reply, args [][]byte) {
	c := w.c
	sub := strings.ToUpper(string(args[1]))
	arity := clientArity[sub]
	switch {
	case arity == 0:
		w.Error("ERR unknown subcommand '" + string(args[1]) + "'. Try CLIENT HELP.")
		return
	case len(args) != arity:
		w.Error("ERR wrong number of arguments for 'client|" + strings.ToLower(sub) + "' command")
		return
	}
	switch sub {
	case "ID":
		w.Int(c.id)
	case "GETNAME":
		if c.name == "" {
			w.Null()
			return
		}
		w.String(c.name)
	case "SETNAME":
		if !validAttr(args[2]) {
			w.Error(badName)
			return
		}
		c.setName(string(args[2]))
		w.Simple("OK")
	case "SETINFO":
		attr := strings.ToUpper(string(args[2]))
		if attr != "LIB-NAME" && attr != "LIB-VER" {
			w.Error("ERR Unrecognized option '" + string(args[2]) + "'")
			return
		}
		if !validAttr(args[3]) {
			w.Error("ERR " + string(args[2]) + " cannot contain spaces, newlines or special characters.")
			return
		}
		c.mu.Lock()
		if attr == "LIB-NAME" {
			c.libName = string(args[3])
		} else {
			c.libVer = string(args[3])
		}
		c.mu.Unlock()
		w.Simple("OK")
	case "INFO":
		w.verbatim(c.info(c.s.now()))
	case "LIST":
		now := c.s.now()
		var b strings.Builder
		for _, o := range c.s.clients() {
			b.WriteString(o.info(now))
		}
		w.verbatim(b.String())
	case "HELP":
		w.Array(len(clientHelp))
		for _, line := range clientHelp {
			w.Simple(line)
		}
	}
}

func hello(_ context.Context, w *Reply, args [][]byte) {
	c := w.c
	proto := w.proto
	if len(args) > 1 {
		v, err := strconv.ParseInt(string(args[1]), 10, 64)
		if err != nil {
			w.Error("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 && v != 3 {
			w.Error("NOPROTO unsupported protocol version")
			return
		}
		proto = int(v)
	}
	var user, pass, name []byte
	for i := 2; i < len(args); i++ {
		more := len(args) - 1 - i
		switch opt := strings.ToUpper(string(args[i])); {
		case opt == "AUTH" && more >= 2:
			user, pass = args[i+1], args[i+2]
			i += 2
		case opt == "SETNAME" && more >= 1:
			name = args[i+1]
			if !validAttr(name) {
				w.Error(badName)
				return
			}
			i++
		default:
			w.Error("ERR Syntax error in HELLO option '" + string(args[i]) + "'")
			return
		}
	}
	if user != nil && !c.login(string(user), pass) {
		w.Error(wrongPass)
		return
	}
	if !c.authed {
		w.Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if name != nil {
		c.setName(string(name))
	}
	c.mu.Lock()
	w.proto = proto
	c.mu.Unlock()
	w.Map(7)
	w.String("server")
	w.String("srsproxy")
	w.String("version")
	w.String(c.s.cfg.Version)
	w.String("proto")
	w.Int(int64(proto))
	w.String("id")
	w.Int(c.id)
	w.String("mode")
	w.String("standalone")
	w.String("role")
	w.String("master")
	w.String("modules")
	w.Array(0)
}

// infoSections are the INFO sections in order, each a function of the
// connection asking.
var infoSections = []struct {
	name   string
	fields func(c *conn) [][2]string
}{
	{"Server", func(c *conn) [][2]string {
		up := int64(c.s.now().Sub(c.s.started).Seconds())
		_, port, _ := net.SplitHostPort(c.nc.LocalAddr().String())
		return [][2]string{
			{"redis_version", RedisVersion},
			{"srsproxy_version", c.s.cfg.Version},
			{"redis_mode", "standalone"},
			{"tcp_port", port},
			{"uptime_in_seconds", strconv.FormatInt(up, 10)},
			{"uptime_in_days", strconv.FormatInt(up/86400, 10)},
		}
	}},
	{"Clients", func(c *conn) [][2]string {
		return [][2]string{{"connected_clients", strconv.Itoa(c.s.Clients())}}
	}},
	{"Persistence", func(*conn) [][2]string {
		return [][2]string{{"loading", "0"}} // ioredis waits for loading:0
	}},
}

func info(_ context.Context, w *Reply, args [][]byte) {
	want := make(map[string]bool)
	for _, a := range args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	everything := len(want) == 0 || want["all"] || want["default"] || want["everything"]
	var b strings.Builder
	for _, sec := range infoSections {
		if !everything && !want[strings.ToLower(sec.name)] {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + sec.name + "\r\n")
		for _, f := range sec.fields(w.c) {
			b.WriteString(f[0] + ":" + f[1] + "\r\n")
		}
	}
	w.verbatim(b.String())
}

func command(_ context.Context, w *Reply, args [][]byte) {
	m := w.c.s.mux
	all := m.sorted()
	if len(args) == 1 {
		w.Array(len(all))
		for _, e := range all {
			commandInfo(w, e)
		}
		return
	}
	// names returns the entries named in args[2:], or all; nil for an unknown name.
	names := func() []*entry {
		if len(args) == 2 {
			return all
		}
		out := make([]*entry, len(args)-2)
		var scratch [maxName]byte
		for i, a := range args[2:] {
			out[i] = m.lookup(a, &scratch)
		}
		return out
	}
	switch sub := strings.ToUpper(string(args[1])); sub {
	case "COUNT", "LIST":
		if len(args) != 2 {
			w.Error("ERR wrong number of arguments for 'command|" + strings.ToLower(sub) + "' command")
			return
		}
		if sub == "COUNT" {
			w.Int(int64(len(all)))
			return
		}
		w.Array(len(all))
		for _, e := range all {
			w.String(e.lower)
		}
	case "INFO":
		es := names()
		w.Array(len(es))
		for _, e := range es {
			if e == nil {
				w.Null()
				continue
			}
			commandInfo(w, e)
		}
	case "DOCS":
		es := slices.DeleteFunc(names(), func(e *entry) bool { return e == nil })
		w.Map(len(es))
		for _, e := range es {
			w.String(e.lower)
			commandDocs(w, e)
		}
	default:
		w.Error("ERR unknown subcommand '" + string(args[1]) + "'. Try COMMAND HELP.")
	}
}

// commandInfo writes the 10-element COMMAND INFO entry of Redis 7.
func commandInfo(w *Reply, e *entry) {
	var flags, cats []string
	if e.noAuth {
		flags = append(flags, "no_auth")
	}
	if e.Role == RoleAdmin {
		flags = append(flags, "admin")
		cats = append(cats, "@admin")
	}
	if e.Group != "" {
		cats = append(cats, "@"+e.Group)
	}
	w.Array(10)
	w.String(e.lower)
	w.Int(int64(e.Arity))
	w.Array(len(flags))
	for _, f := range flags {
		w.Simple(f)
	}
	w.Int(0) // first key
	w.Int(0) // last key
	w.Int(0) // key step
	w.Array(len(cats))
	for _, c := range cats {
		w.Simple(c)
	}
	w.Array(0) // tips
	w.Array(0) // key specs
	w.Array(0) // subcommands
}

// commandDocs writes the COMMAND DOCS map of a command. The arguments are
// one pseudo-argument named after the syntax, which redis-cli 7 prints as the
// typing hint and in "help <command>".
func commandDocs(w *Reply, e *entry) {
	_, params, _ := strings.Cut(e.Syntax, " ")
	n := 3
	if params != "" {
		n++
	}
	w.Map(n)
	w.String("summary")
	w.String(e.Summary)
	w.String("since")
	w.String(e.Since)
	w.String("group")
	w.String(e.Group)
	if params != "" {
		w.String("arguments")
		w.Array(1)
		w.Map(3)
		w.String("name")
		w.String(params)
		w.String("type")
		w.String("string")
		w.String("display_text")
		w.String(params)
	}
}

func multi(_ context.Context, w *Reply, _ [][]byte) {
	if w.c.tx != nil {
		w.Error("ERR MULTI calls can not be nested")
		return
	}
	w.c.tx = &transaction{}
	w.Simple("OK")
}

func exec(_ context.Context, w *Reply, _ [][]byte) {
	c := w.c
	tx := c.tx
	c.tx = nil
	switch {
	case tx == nil:
		w.Error("ERR EXEC without MULTI")
	case tx.failed:
		w.Error("EXECABORT Transaction discarded because of previous errors.")
	default:
		w.Array(len(tx.queued))
		for _, q := range tx.queued {
			c.call(q.e, q.args)
		}
	}
}

func discard(_ context.Context, w *Reply, _ [][]byte) {
	if w.c.tx == nil {
		w.Error("ERR DISCARD without MULTI")
		return
	}
	w.c.tx = nil
	w.Simple("OK")
}
