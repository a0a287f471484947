package proxy

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Defaults applied by NewServer to zero Config fields.
const (
	DefaultAddr           = "127.0.0.1:6380"
	DefaultMaxArgs        = 4096
	DefaultMaxBulk        = 1 << 20
	DefaultMaxMultiQueued = 1000
	// DefaultMaxMultiBytes bounds what one MULTI holds in memory until EXEC
	// (issue 12: 30 queued commands of 60 × 1 MiB took 2.6 GB).
	DefaultMaxMultiBytes = 16 << 20
	DefaultMaxClients    = 10000
	// DefaultPartialTimeout is how long a half-sent command may make no
	// progress before the connection is closed.
	DefaultPartialTimeout = 30 * time.Second
	DefaultVersion        = "dev"
)

// Role is what a user may run. A command's Role is the minimum role needed.
type Role int

const (
	// RoleApp may run review and read commands: what an app server needs.
	RoleApp Role = iota
	// RoleAdmin may run everything.
	RoleAdmin
)

// String returns "app" or "admin", as written in a users file.
func (r Role) String() string {
	switch r {
	case RoleApp:
		return "app"
	case RoleAdmin:
		return "admin"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// User is an account that may AUTH.
type User struct {
	Name     string
	Password string
	// PasswordSHA256, when set, is the SHA-256 of the password instead of
	// Password itself (a users file entry `#<64 hex digits>`, as Redis ACL
	// files write it), so the file need not hold plaintext.
	PasswordSHA256 *[32]byte
	Role           Role
}

// LoadUsers reads a users file: one user per line, `name role password`
// separated by white space (so a password cannot contain spaces), role `app`
// or `admin`; a password written `#<sha256 hex>` is stored hashed
// (`printf %s "$PASS" | sha256sum`). Lines starting with '#' and blank lines are skipped. Errors name
// the file and line: a malformed line, an unknown role, or a duplicate name.
func LoadUsers(path string) (map[string]User, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load users: %w", err)
	}
	defer f.Close()
	users := make(map[string]User)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s:%d: want `name role password`, got %d fields", path, n, len(fields))
		}
		u := User{Name: fields[0], Password: fields[2]}
		if hexHash, ok := strings.CutPrefix(fields[2], "#"); ok {
			b, err := hex.DecodeString(hexHash)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("%s:%d: a password starting with '#' must be '#' and 64 hex digits of its SHA-256", path, n)
			}
			var h [32]byte
			copy(h[:], b)
			u.Password, u.PasswordSHA256 = "", &h
		}
		switch fields[1] {
		case "app":
			u.Role = RoleApp
		case "admin":
			u.Role = RoleAdmin
		default:
			return nil, fmt.Errorf("%s:%d: unknown role %q (want app or admin)", path, n, fields[1])
		}
		if _, dup := users[u.Name]; dup {
			return nil, fmt.Errorf("%s:%d: duplicate user %q", path, n, u.Name)
		}
		users[u.Name] = u
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("load users %s: %w", path, err)
	}
	return users, nil
}

// Config configures a Server. The zero value of every field means its default.
type Config struct {
	// Addr is the listen address of ListenAndServe; "127.0.0.1:0" picks a free port.
	Addr string
	// RequirePass, if set, adds user "default" with RoleAdmin and this password.
	RequirePass string
	// Users, if non-empty, are the accounts for AUTH user pass and HELLO AUTH.
	// With neither RequirePass nor Users every connection is admin without AUTH.
	Users map[string]User
	// MaxArgs is the most arguments a command may have, its name included.
	MaxArgs int
	// MaxBulk is the largest argument in bytes.
	MaxBulk int
	// MaxMultiQueued is the most commands a MULTI transaction may queue.
	MaxMultiQueued int
	// MaxClients is the most connections served at once, default 10000;
	// cmd/srsproxy keeps it below the process's file-descriptor limit.
	MaxClients int
	// MaxMultiBytes is the most argument bytes a MULTI transaction may queue
	// (they are copied until EXEC), default 16 MiB.
	MaxMultiBytes int
	// MaxMemoryClients bounds the memory all connections together hold in
	// read buffers (partial and pipelined commands) and queued MULTI
	// arguments, as Redis's maxmemory-clients: past it the connections
	// holding the most are disconnected, largest first, with a log line.
	// Zero means no limit.
	MaxMemoryClients int64
	// PartialTimeout closes a connection whose half-sent command made no
	// progress for this long (it holds buffer memory), default 30 s. A
	// connection between commands may stay idle for ever, as in Redis.
	PartialTimeout time.Duration
	// TrackingMaxKeys is the most keys the CLIENT TRACKING table holds;
	// past it the key expiring soonest is invalidated early. Default 100,000.
	TrackingMaxKeys int
	// TrackingMaxAge is how long a tracked reply may stay cached without a
	// change being reported, default 1 minute (docs/TRACKING.md).
	TrackingMaxAge time.Duration
	// Version is this build's version, reported by HELLO and INFO.
	Version string
	// Logger receives connection errors, handler panics and failed barriers.
	Logger *slog.Logger
}

// Validate reports the first invalid field, naming it.
func (c Config) Validate() error {
	switch {
	case c.MaxArgs != 0 && c.MaxArgs < 8:
		return fmt.Errorf("Config.MaxArgs: %d is below 8, too few for the HELLO handshake", c.MaxArgs)
	case c.MaxBulk != 0 && c.MaxBulk < 1024:
		return fmt.Errorf("Config.MaxBulk: %d is below 1024 bytes", c.MaxBulk)
	case c.MaxMultiQueued < 0:
		return fmt.Errorf("Config.MaxMultiQueued: %d is negative", c.MaxMultiQueued)
	case c.MaxClients < 0:
		return fmt.Errorf("Config.MaxClients: %d is negative", c.MaxClients)
	case c.MaxMultiBytes < 0:
		return fmt.Errorf("Config.MaxMultiBytes: %d is negative", c.MaxMultiBytes)
	case c.MaxMemoryClients < 0:
		return fmt.Errorf("Config.MaxMemoryClients: %d is negative", c.MaxMemoryClients)
	case c.PartialTimeout < 0:
		return fmt.Errorf("Config.PartialTimeout: %v is negative", c.PartialTimeout)
	case c.TrackingMaxKeys < 0:
		return fmt.Errorf("Config.TrackingMaxKeys: %d is negative", c.TrackingMaxKeys)
	case c.TrackingMaxAge < 0:
		return fmt.Errorf("Config.TrackingMaxAge: %v is negative", c.TrackingMaxAge)
	}
	if _, ok := c.Users["default"]; ok && c.RequirePass != "" {
		return errors.New("Config.RequirePass: conflicts with user \"default\" in Config.Users")
	}
	for name, u := range c.Users {
		switch {
		case name == "" || strings.ContainsFunc(name, isSpaceOrControl):
			return fmt.Errorf("Config.Users: invalid user name %q", name)
		case u.Name != name:
			return fmt.Errorf("Config.Users[%q]: Name is %q", name, u.Name)
		case u.Password == "" && u.PasswordSHA256 == nil:
			return fmt.Errorf("Config.Users[%q]: empty Password", name)
		case u.Password != "" && u.PasswordSHA256 != nil:
			return fmt.Errorf("Config.Users[%q]: both Password and PasswordSHA256", name)
		case u.Role != RoleApp && u.Role != RoleAdmin:
			return fmt.Errorf("Config.Users[%q]: invalid Role %d", name, int(u.Role))
		}
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	c.Addr = cmp.Or(c.Addr, DefaultAddr)
	c.MaxArgs = cmp.Or(c.MaxArgs, DefaultMaxArgs)
	c.MaxBulk = cmp.Or(c.MaxBulk, DefaultMaxBulk)
	c.MaxMultiQueued = cmp.Or(c.MaxMultiQueued, DefaultMaxMultiQueued)
	c.MaxMultiBytes = cmp.Or(c.MaxMultiBytes, DefaultMaxMultiBytes)
	c.MaxClients = cmp.Or(c.MaxClients, DefaultMaxClients)
	c.Version = cmp.Or(c.Version, DefaultVersion)
	c.PartialTimeout = cmp.Or(c.PartialTimeout, DefaultPartialTimeout)
	c.TrackingMaxKeys = cmp.Or(c.TrackingMaxKeys, DefaultTrackingMaxKeys)
	c.TrackingMaxAge = cmp.Or(c.TrackingMaxAge, DefaultTrackingMaxAge)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
