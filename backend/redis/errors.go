package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	goredis "github.com/redis/go-redis/v9"
)

// unavailablePrefixes are Redis error replies that mean "cannot serve now",
// not "your request was wrong".
var unavailablePrefixes = []string{"LOADING", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "BUSY ", "READONLY", "NOREPLICAS"}

// IsUnavailable reports whether err says the upstream Redis is unavailable:
// network errors (a refused or reset connection, a dial that timed out), a
// read or write deadline on a connection that was sent a command (the server
// did not answer), a context deadline (see IsOverloaded), a closed client, a
// server that is loading, failing over or has no cluster quorum, and a TLS
// handshake that failed (a certificate that does not verify, the server's
// refusal of ours, a server that does not speak TLS): such an upstream cannot
// be used any more than a down one, so the breaker opens into Safe Mode and
// alerts instead of every call failing as an internal error. The circuit
// breaker counts only these.
//
// Not availability problems: a nil reply, a script's own error, a
// cancelled context, and overload (IsOverloaded): waiting for a pooled
// connection says that this sidecar asks more than its pool holds, not that
// Redis is down. A stalled Redis is still seen: the calls that hold the
// pool's connections fail with their read deadlines, and those count.
func IsUnavailable(err error) bool {
	switch {
	case err == nil, errors.Is(err, goredis.Nil), errors.Is(err, context.Canceled), IsOverloaded(err):
		return false
	case errors.Is(err, goredis.ErrClosed), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true // socket deadlines ("i/o timeout"), dial failures, the server's TLS alerts
	}
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	if errors.As(err, &certErr) || errors.As(err, &recordErr) {
		return true
	}
	var redisErr goredis.Error
	if errors.As(err, &redisErr) {
		msg := redisErr.Error()
		for _, p := range unavailablePrefixes {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	// go-redis reports some dial failures as plain errors wrapping no type.
	return strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "use of closed network connection")
}

// IsOverloaded reports whether err is the sidecar's own waiting rather than
// an answer (or the silence) of Redis: go-redis gave up waiting for a pooled
// connection (ErrPoolTimeout after PoolTimeout, ErrPoolExhausted). Such a
// call sent nothing to Redis; it is safe to retry.
//
// A bare context.DeadlineExceeded is not overload, though go-redis returns
// it when the caller's deadline passes during a pool wait: it returns the
// same error when that deadline passes on a socket that was sent a command,
// or while a new connection waits for the server to answer its handshake
// (HELLO) — a stalled server. Only the caller can tell whose deadline it was
// (the engine's callCtx does). A socket deadline from ReadTimeout or
// WriteTimeout is the socket's "i/o timeout" (os.ErrDeadlineExceeded).
// TestPoolWaitIsOverload and TestStalledRedisIsUnavailable show each case
// against a real server.
func IsOverloaded(err error) bool {
	return errors.Is(err, goredis.ErrPoolTimeout) || errors.Is(err, goredis.ErrPoolExhausted)
}

// IsTimeout reports whether err is a call that got no answer in time (a
// socket deadline, or a context deadline), as opposed to a refused or
// broken connection. The breaker counts a timeout only if no other call was
// answered meanwhile (engine.SafeModeConfig.Timeout).
func IsTimeout(err error) bool {
	if err == nil || IsOverloaded(err) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}
