package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// proc is a child process the bench started: a redis-server, nutcracker or
// a sidecar. Children get SIGKILL if the bench dies (Pdeathsig).
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

func startProc(dir, name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to timeout, then kills.
func (p *proc) stop(timeout time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail is the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func freeAddr() (string, error) {
	p, err := freePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// waitRESP waits until addr answers PING (any reply counts), or p exits.
func waitRESP(p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited:\n%s", p.name, p.tail())
		}
		if c, err := dialRESP(addr, 200*time.Millisecond); err == nil {
			c.nc.SetDeadline(time.Now().Add(time.Second))
			_, err := c.do("PING")
			c.Close()
			var re respError
			if err == nil || errors.As(err, &re) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			msg := ""
			if p != nil {
				msg = ":\n" + p.tail()
			}
			return fmt.Errorf("%s not answering on %s after %s%s", p.name, addr, timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recommendedRedis are the upstream settings docs/BENCHMARKS.md recommends:
// a student's ~500-card due set and card hash stay listpacks, the compact
// encoding, instead of a skiplist and a hash table.
var recommendedRedis = []string{
	"--zset-max-listpack-entries", "1024", "--zset-max-listpack-value", "128",
	"--hash-max-listpack-entries", "1024", "--hash-max-listpack-value", "128",
}

// startRedis starts a private redis-server without persistence on a free port.
func startRedis(dir, name string, extra ...string) (*proc, string, error) {
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, "", err
		}
		rdir := filepath.Join(dir, name)
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			return nil, "", err
		}
		args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
			"--appendonly", "no", "--dir", rdir, "--maxclients", "15000"}, extra...)
		p, err := startProc(dir, name, "redis-server", args...)
		if err != nil {
			return nil, "", err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if err = waitRESP(p, addr, 10*time.Second); err == nil {
			return p, addr, nil
		}
		p.stop(time.Second)
		if attempt == 2 {
			return nil, "", err
		}
	}
}

// startTwemproxy starts nutcracker in front of redisAddr with a generated
// configuration: one pool, hash tags {…} (the sidecar's keys carry one), one
// server connection (nutcracker's default: it pipelines every client over it).
func startTwemproxy(dir, bin, redisAddr string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	stats, err := freePort()
	if err != nil {
		return nil, "", err
	}
	conf := fmt.Sprintf(`srsbench:
  listen: %s
  hash: fnv1a_64
  hash_tag: "{}"
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  server_connections: 1
  timeout: 5000
  servers:
   - %s:1
`, addr, redisAddr)
	path := filepath.Join(dir, "nutcracker.yml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	p, err := startProc(dir, "nutcracker", bin, "-c", path, "-s", strconv.Itoa(stats), "-a", "127.0.0.1",
		"-o", filepath.Join(dir, "nutcracker.out"))
	if err != nil {
		return nil, "", err
	}
	if err := waitRESP(p, addr, 10*time.Second); err != nil {
		p.stop(time.Second)
		return nil, "", err
	}
	return p, addr, nil
}

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit. Setting it
// explicitly also makes the children (redis-server, nutcracker) inherit it.
func raiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return rl.Cur, nil
}
