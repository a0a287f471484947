package proxy

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
		connection("CLIENT", -2, "CLIENT ID|GETNAME|SETNAME name|SETINFO LIB-NAME|LIB-VER value|INFO|LIST|"+
			"TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]|CACHING YES|NO|TRACKINGINFO|GETREDIR|HELP",
			"Manages the connection's name, library information and client-side caching mode.", client),
		connection("READONLY", 1, "READONLY", "Accepted for cluster clients; the node serves reads and writes.", ok),
		connection("READWRITE", 1, "READWRITE", "Accepted for cluster clients; the node serves reads and writes.", ok),
		connection("ASKING", 1, "ASKING", "Accepted for cluster clients; no slot ever migrates.", ok),
		{Command: Command{Name: "CLUSTER", Arity: -2, Syntax: "CLUSTER SLOTS|SHARDS|NODES|INFO|MYID|MYSHARDID|HELP",
			Summary: "Describes a cluster of one node, this one, owning every slot, for cluster clients.",
			Since:   "3.0.0", Group: "cluster", Handler: cluster}},
		{Command: Command{Name: "DBSIZE", Arity: 1, Syntax: "DBSIZE", Summary: "Returns 0: the sidecar holds no keys of its own.",
			Since: "1.0.0", Group: "server", Handler: dbsize}},
		{Command: Command{Name: "SCAN", Arity: -2, Syntax: "SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]",
			Summary: "Returns cursor 0 and no keys: the sidecar holds no keys of its own.", Since: "2.8.0", Group: "generic", Handler: scan}},
		{Command: Command{Name: "TYPE", Arity: 2, Syntax: "TYPE key", Summary: "Returns none: the sidecar holds no keys of its own.",
			Since: "1.0.0", Group: "generic", Handler: typeCmd}},
		connection("HELLO", -1, "HELLO [protover [AUTH username password] [SETNAME clientname]]",
			"Handshakes: selects RESP2 or RESP3, optionally authenticates and names the connection.", hello),
		{Command: Command{Name: "INFO", Arity: -1, Syntax: "INFO [section ...]", Summary: "Returns information about the server.",
			Since: "1.0.0", Group: "server", Handler: info}},
		{Command: Command{Name: "COMMAND", Arity: -1, Syntax: "COMMAND [COUNT|LIST|INFO [name ...]|DOCS [name ...]]",
			Summary: "Returns information about the commands.", Since: "2.8.13", Group: "server", Handler: command}},
		{Command: Command{Name: "PTTL", Arity: 2, Syntax: "PTTL key",
			Summary: "Returns the milliseconds until tracking clients are told key's cached replies expire, -1 if none is scheduled.",
			Since:   "2.6.0", Group: "generic", Handler: pttl}},
		{Command: Command{Name: "SUBSCRIBE", Arity: 2, Syntax: "SUBSCRIBE " + invalidateChannel,
			Summary: "Receives redirected CLIENT TRACKING invalidations (the only channel there is).",
			Since:   "2.0.0", Group: "pubsub", Handler: subscribe}},
		{Command: Command{Name: "UNSUBSCRIBE", Arity: -1, Syntax: "UNSUBSCRIBE [" + invalidateChannel + "]",
			Summary: "Stops receiving redirected invalidations.", Since: "2.0.0", Group: "pubsub", Handler: unsubscribe}},
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
	switch {
	case len(args) <= 2 && w.proto == 2 && w.c.subscribed.Load():
		// A subscribed RESP2 connection gets PING's reply as a message.
		w.Array(2)
		w.String("pong")
		if len(args) == 2 {
			w.Bulk(args[1])
		} else {
			w.String("")
		}
	case len(args) == 1:
		w.Simple("PONG")
	case len(args) == 2:
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
	if len(s) > maxAttr {
		return false
	}
	for _, c := range s {
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

// maxAttr bounds a client name and library name/version: CLIENT LIST of
// every other connection copies them (issue 12: a 1 MiB name was taken).
const maxAttr = 256

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
	"TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]] [OPTIN] [OPTOUT] [NOLOOP]",
	"    Enable or disable server-assisted client-side caching of SRS.DUE and SRS.CARD replies.",
	"CACHING (YES|NO)", "    In OPTIN (OPTOUT) mode, track (do not track) the next command's reads.",
	"TRACKINGINFO", "    Return the tracking mode of the current connection.",
	"GETREDIR", "    Return the client ID invalidations are redirected to, 0 if none, -1 if tracking is off.",
	"HELP", "    Print this help.",
}

// clientArity is the argument count of each CLIENT subcommand, negative for
// a minimum as in Command.Arity.
var clientArity = map[string]int{"ID": 2, "GETNAME": 2, "SETNAME": 3, "SETINFO": 4, "INFO": 2, "LIST": 2, "HELP": 2,
	"TRACKING": -3, "CACHING": 3, "TRACKINGINFO": 2, "GETREDIR": 2}

func client(_ context.Context, w *Reply, args [][]byte) {
	c := w.c
	sub := strings.ToUpper(string(args[1]))
	arity := clientArity[sub]
	switch {
	case arity == 0:
		w.Error("ERR unknown subcommand '" + string(args[1]) + "'. Try CLIENT HELP.")
		return
	case arity > 0 && len(args) != arity || arity < 0 && len(args) < -arity:
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
		if len(args[2]) > maxAttr {
			w.Error("ERR Client names are at most 256 bytes.")
			return
		}
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
		if c.role != RoleAdmin {
			// Other students' connections are not an app user's business.
			w.Error("NOPERM User " + c.reply.user + " has no permissions to run the 'client|list' command (admin only)")
			return
		}
		now := c.s.now()
		var b strings.Builder
		for _, o := range c.s.clients() {
			b.WriteString(o.info(now))
		}
		w.verbatim(b.String())
	case "TRACKING":
		clientTracking(w, args[2:])
	case "CACHING":
		clientCaching(w, args[2])
	case "TRACKINGINFO":
		clientTrackingInfo(w)
	case "GETREDIR":
		w.Int(c.track.Load().redirection())
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
	w.Map(8)
	w.String("server")
	w.String("srsproxy")
	w.String("version")
	w.String(RedisVersion)
	w.String("srsproxy_version")
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
// connection asking, with Redis's field names for what monitoring tools and
// redis-cli --stat read.
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
			{"arch_bits", strconv.Itoa(32 << (^uint(0) >> 63))},
			{"tcp_port", port},
			{"uptime_in_seconds", strconv.FormatInt(up, 10)},
			{"uptime_in_days", strconv.FormatInt(up/86400, 10)},
		}
	}},
	{"Clients", func(c *conn) [][2]string {
		return [][2]string{
			{"connected_clients", strconv.Itoa(c.s.Clients())},
			{"blocked_clients", "0"},
			{"tracking_clients", strconv.FormatInt(c.s.track.clients.Load(), 10)},
		}
	}},
	{"Memory", func(c *conn) [][2]string {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return [][2]string{
			{"used_memory", strconv.FormatUint(ms.HeapAlloc, 10)}, // Go heap in use by live and not yet swept objects
			{"used_memory_human", humanBytes(ms.HeapAlloc)},
			{"used_memory_sys", strconv.FormatUint(ms.Sys, 10)},                 // memory obtained from the OS by the Go runtime
			{"mem_clients_normal", strconv.FormatInt(c.s.clientMem.Load(), 10)}, // read buffers and MULTI queues
			{"maxmemory_clients", strconv.FormatInt(c.s.cfg.MaxMemoryClients, 10)},
			{"maxmemory", "0"},
			{"maxmemory_policy", "noeviction"}, // BullMQ and Sidekiq check it
		}
	}},
	{"Persistence", func(*conn) [][2]string {
		return [][2]string{{"loading", "0"}} // ioredis waits for loading:0
	}},
	{"Stats", func(c *conn) [][2]string {
		return [][2]string{
			{"total_connections_received", strconv.FormatInt(c.s.lastID.Load(), 10)},
			{"total_commands_processed", strconv.FormatInt(c.s.stats.commands.Load(), 10)},
			{"acl_access_denied_auth", strconv.FormatInt(c.s.stats.authDenied.Load(), 10)},
			{"rejected_connections", strconv.FormatInt(c.s.stats.rejectedConns.Load(), 10)},
			{"evicted_clients", strconv.FormatInt(c.s.stats.evictedClients.Load(), 10)},
			{"tracking_total_keys", strconv.Itoa(c.s.track.size())},
			{"tracking_invalidations_sent", strconv.FormatInt(c.s.track.sent.Load(), 10)},
			{"instantaneous_ops_per_sec", strconv.FormatInt(c.s.opsPerSec(c.s.now()), 10)},
		}
	}},
	{"Replication", func(*conn) [][2]string {
		return [][2]string{{"role", "master"}, {"connected_slaves", "0"}}
	}},
	// Keyspace is empty, as in a Redis with no keys: the sidecar's data
	// lives upstream, under the SRS.* commands (DBSIZE answers 0).
	{"Keyspace", func(*conn) [][2]string { return nil }},
}

// humanBytes formats n as INFO's *_human fields do: 1.50M.
func humanBytes(n uint64) string {
	const units = "BKMGTP"
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatUint(n, 10) + "B"
	}
	return strconv.FormatFloat(f, 'f', 2, 64) + units[i:i+1]
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
	c.dropTx()
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
	w.c.dropTx()
	w.Simple("OK")
}

func ok(_ context.Context, w *Reply, _ [][]byte) { w.Simple("OK") }

// The CLUSTER replies describe a cluster of one node that owns every slot
// and is reached at the address the client connected to, as Redis proxies
// answer, so that cluster clients (go-redis ClusterClient, ioredis Cluster,
// rueidis) route every command to this sidecar.
const lastSlot = 16383

// node is this server as the connection sees it: its address and a node id
// derived from it, stable across connections.
func (c *conn) node() (host string, port int64, id string) {
	addr := c.nc.LocalAddr().String()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	port, _ = strconv.ParseInt(p, 10, 64)
	sum := sha1.Sum([]byte(addr))
	return host, port, hex.EncodeToString(sum[:])
}

var clusterHelp = []string{
	"CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"SLOTS", "    Return the slot ranges: one, 0-16383, served by this node.",
	"SHARDS", "    Return the shards: one, this node, with every slot.",
	"NODES", "    Return the cluster configuration: this node alone.",
	"INFO", "    Return information about the cluster.",
	"MYID", "    Return this node's id.",
	"MYSHARDID", "    Return this node's shard id.",
	"HELP", "    Print this help.",
}

func cluster(_ context.Context, w *Reply, args [][]byte) {
	sub := strings.ToUpper(string(args[1]))
	if !slices.Contains([]string{"SLOTS", "SHARDS", "NODES", "INFO", "MYID", "MYSHARDID", "HELP"}, sub) {
		w.Error("ERR unknown subcommand '" + string(args[1]) + "'. Try CLUSTER HELP.")
		return
	}
	if len(args) != 2 {
		w.Error("ERR wrong number of arguments for 'cluster|" + strings.ToLower(sub) + "' command")
		return
	}
	host, port, id := w.c.node()
	switch sub {
	case "SLOTS":
		w.Array(1)
		w.Array(3)
		w.Int(0)
		w.Int(lastSlot)
		w.Array(3) // as Redis 6, without Redis 7's networking metadata
		w.String(host)
		w.Int(port)
		w.String(id)
	case "SHARDS":
		w.Array(1)
		w.Map(2)
		w.String("slots")
		w.Array(2)
		w.Int(0)
		w.Int(lastSlot)
		w.String("nodes")
		w.Array(1)
		w.Map(7)
		w.String("id")
		w.String(id)
		w.String("port")
		w.Int(port)
		w.String("ip")
		w.String(host)
		w.String("endpoint")
		w.String(host)
		w.String("role")
		w.String("master")
		w.String("replication-offset")
		w.Int(0)
		w.String("health")
		w.String("online")
	case "NODES":
		w.String(id + " " + net.JoinHostPort(host, strconv.FormatInt(port, 10)) + "@0 myself,master - 0 0 1 connected 0-" +
			strconv.Itoa(lastSlot) + "\n")
	case "INFO":
		w.verbatim("cluster_enabled:1\r\ncluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n" +
			"cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:1\r\ncluster_size:1\r\n" +
			"cluster_current_epoch:1\r\ncluster_my_epoch:1\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n" +
			"total_cluster_links_buffer_limit_exceeded:0\r\n")
	case "MYID", "MYSHARDID":
		w.String(id)
	case "HELP":
		w.Array(len(clusterHelp))
		for _, line := range clusterHelp {
			w.Simple(line)
		}
	}
}

// dbsize, scan and typeCmd answer as a Redis with no keys, so that redis-cli
// --bigkeys, --memkeys and --scan finish cleanly: the sidecar's data lives
// upstream, under the SRS.* commands.
func dbsize(_ context.Context, w *Reply, _ [][]byte) { w.Int(0) }

func scan(_ context.Context, w *Reply, args [][]byte) {
	if _, err := strconv.ParseUint(string(args[1]), 10, 64); err != nil {
		w.Error("ERR invalid cursor")
		return
	}
	for i := 2; i < len(args); i += 2 {
		opt := strings.ToUpper(string(args[i]))
		if i+1 >= len(args) || opt != "MATCH" && opt != "COUNT" && opt != "TYPE" {
			w.Error("ERR syntax error")
			return
		}
		if n, err := strconv.ParseInt(string(args[i+1]), 10, 64); opt == "COUNT" && (err != nil || n < 1) {
			w.Error("ERR syntax error")
			return
		}
	}
	w.Array(2)
	w.String("0")
	w.Array(0)
}

func typeCmd(_ context.Context, w *Reply, _ [][]byte) { w.Simple("none") }

// serverStats are the counters INFO reports.
type serverStats struct {
	commands       atomic.Int64 // commands run, MULTI's queued ones included
	authDenied     atomic.Int64 // failed AUTH and HELLO … AUTH attempts
	rejectedConns  atomic.Int64 // connections refused past MaxClients
	evictedClients atomic.Int64 // connections closed by the client-memory budget

	mu      sync.Mutex
	at      time.Time // of the last ops sample
	count   int64     // commands at the last sample
	opsRate int64     // commands per second between the last two samples
}

// opsPerSec is instantaneous_ops_per_sec: the rate since the previous
// sample, taken when INFO asks at least 100 ms after it (the first one
// measures from start-up).
func (s *Server) opsPerSec(now time.Time) int64 {
	st := &s.stats
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.at.IsZero() {
		st.at = s.started
	}
	if dt := now.Sub(st.at); dt >= 100*time.Millisecond {
		n := st.commands.Load()
		st.opsRate = int64(float64(n-st.count) / dt.Seconds())
		st.at, st.count = now, n
	}
	return st.opsRate
}
