package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// respConn is a minimal RESP2 client: one connection, a write buffer for
// pipelining and a reply reader that can skip a reply without allocating.
// It exists so that 10,000 connections cost the bench a goroutine and two
// small buffers each, and so the client does as little work per request as
// possible next to the server it measures.
type respConn struct {
	nc  net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	buf []byte
}

// respError is an error reply (-ERR …); the connection stays usable.
type respError string

func (e respError) Error() string { return string(e) }

func dialRESP(addr string, timeout time.Duration) (*respConn, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return &respConn{nc: nc, r: bufio.NewReaderSize(nc, 4096), w: bufio.NewWriterSize(nc, 4096)}, nil
}

func (c *respConn) Close() error { return c.nc.Close() }

// send buffers one command; flush writes the buffered commands.
func (c *respConn) send(args ...string) {
	b := c.buf[:0]
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	c.buf = b
	c.w.Write(b)
}

func (c *respConn) flush() error { return c.w.Flush() }

// do sends one command and reads its reply.
func (c *respConn) do(args ...string) (any, error) {
	c.send(args...)
	if err := c.flush(); err != nil {
		return nil, err
	}
	return c.read()
}

func (c *respConn) line() ([]byte, error) {
	l, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(l) < 3 || l[len(l)-2] != '\r' {
		return nil, fmt.Errorf("resp: malformed line %q", l)
	}
	return l[:len(l)-2], nil
}

func atoi(b []byte) (int, error) {
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, fmt.Errorf("resp: bad length %q", b)
	}
	return n, nil
}

// skip reads one reply and discards it. It returns a respError for an error
// reply at the top level (errors nested in arrays are not looked at), or the
// I/O error that broke the connection.
func (c *respConn) skip() error {
	l, err := c.line()
	if err != nil {
		return err
	}
	switch l[0] {
	case '+', ':':
		return nil
	case '-':
		return respError(l[1:])
	case '$':
		n, err := atoi(l[1:])
		if err != nil || n < 0 {
			return err
		}
		_, err = c.r.Discard(n + 2)
		return err
	case '*':
		n, err := atoi(l[1:])
		if err != nil {
			return err
		}
		for range n {
			if err := c.skip(); err != nil {
				var re respError
				if !errors.As(err, &re) {
					return err
				}
			}
		}
		return nil
	}
	return fmt.Errorf("resp: unexpected reply type %q", l[0])
}

// read reads one reply as string, int64, nil, []any or respError; an error
// reply at the top level is also returned as the error.
func (c *respConn) read() (any, error) {
	l, err := c.line()
	if err != nil {
		return nil, err
	}
	switch l[0] {
	case '+':
		return string(l[1:]), nil
	case ':':
		return strconv.ParseInt(string(l[1:]), 10, 64)
	case '-':
		e := respError(l[1:])
		return e, e
	case '$':
		n, err := atoi(l[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, err := atoi(l[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			v, err := c.read()
			var re respError
			if err != nil && !errors.As(err, &re) {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("resp: unexpected reply type %q", l[0])
}

// flatMap turns a RESP2 map reply (field, value, …) into a Go map.
func flatMap(v any) map[string]any {
	a, _ := v.([]any)
	m := make(map[string]any, len(a)/2)
	for i := 0; i+1 < len(a); i += 2 {
		if k, ok := a[i].(string); ok {
			m[k] = a[i+1]
		}
	}
	return m
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}
