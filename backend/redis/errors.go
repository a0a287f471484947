package redis

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	goredis "github.com/redis/go-redis/v9"
)

// unavailablePrefixes are Redis error replies that mean "cannot serve now",
// not "your request was wrong".
var unavailablePrefixes = []string{"LOADING", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "BUSY ", "READONLY", "NOREPLICAS"}

// IsUnavailable reports whether err says the upstream Redis is unavailable
// (network errors, timeouts, a closed or exhausted pool, a server that is
// loading, failing over or has no cluster quorum). A nil reply, a script's
// own error and a cancelled context are not availability problems: the
// circuit breaker counts only these.
func IsUnavailable(err error) bool {
	switch {
	case err == nil, errors.Is(err, goredis.Nil), errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, goredis.ErrPoolTimeout), errors.Is(err, goredis.ErrPoolExhausted), errors.Is(err, goredis.ErrClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
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
