package faults

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Cluster is a private Redis Cluster of redis-server processes on free
// loopback ports (masters plus their replicas), created with
// `redis-cli --cluster create`. It is torn down with the test.
type Cluster struct {
	Nodes []*ClusterNode
	t     testing.TB
}

// ClusterNode is one redis-server of a Cluster.
type ClusterNode struct {
	Port, BusPort int
	dir           string
	cmd           *exec.Cmd
	dead          bool
}

// Addr is the node's client address.
func (n *ClusterNode) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

// ClusterNodeTimeout is the cluster-node-timeout of the harness's nodes: a
// master is marked failed, and its replica elected, about this long after it
// stops answering (Redis's default is 15 s).
const ClusterNodeTimeout = 1000 * time.Millisecond

// StartCluster starts masters × (1 + replicas) nodes without persistence,
// joins them into one cluster with every slot covered, and waits until each
// node reports cluster_state:ok and each replica's link to its master is up.
// extra is appended to every node's command line.
func StartCluster(t testing.TB, masters, replicas int, extra ...string) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli not installed: no Redis Cluster")
	}
	c := &Cluster{t: t}
	t.Cleanup(c.stop)
	for range masters * (1 + replicas) {
		n := &ClusterNode{Port: FreePort(t), BusPort: FreePort(t), dir: t.TempDir()}
		c.Nodes = append(c.Nodes, n)
		c.start(n, extra...)
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *Cluster) start(n *ClusterNode, extra ...string) {
	c.t.Helper()
	args := append([]string{
		"--port", strconv.Itoa(n.Port), "--cluster-port", strconv.Itoa(n.BusPort), "--bind", "127.0.0.1",
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(n.dir, "nodes.conf"),
		"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout.Milliseconds())),
		// A replica takes over however long its link was down: the harness
		// kills masters on purpose and wants the failover, not a stuck slot.
		"--cluster-replica-validity-factor", "0",
		// Replicas sync at once (the default waits 5 s for more replicas).
		"--repl-diskless-sync-delay", "0",
		"--save", "", "--appendonly", "no", "--dir", n.dir, "--logfile", filepath.Join(n.dir, "redis.log"),
	}, extra...)
	n.cmd = exec.Command("redis-server", args...)
	if err := n.cmd.Start(); err != nil {
		c.t.Fatalf("redis-server: %v", err)
	}
	if err := WaitPort(n.Addr(), 10*time.Second); err != nil {
		c.t.Fatalf("cluster node: %v\n%s", err, n.Log())
	}
}

// Log returns the node's redis.log.
func (n *ClusterNode) Log() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "redis.log"))
	return string(b)
}

func (c *Cluster) stop() {
	for _, n := range c.Nodes {
		n.kill()
	}
}

func (n *ClusterNode) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		_ = n.cmd.Wait()
		n.cmd = nil
	}
	n.dead = true
}

// Addrs returns every node's address (masters and replicas): the seed list
// of a cluster client.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// live returns the nodes not killed.
func (c *Cluster) live() []*ClusterNode {
	var out []*ClusterNode
	for _, n := range c.Nodes {
		if !n.dead {
			out = append(out, n)
		}
	}
	return out
}

// NodeInfo is one line of CLUSTER NODES.
type NodeInfo struct {
	ID, Addr, MasterID string
	Master, Failed     bool
	Slots              int // slots served (masters)
}

// Topology returns CLUSTER NODES as seen by a live node.
func (c *Cluster) Topology() ([]NodeInfo, error) {
	var lastErr error
	for _, n := range c.live() {
		out, err := nodeCmd(n.Addr(), "CLUSTER", "NODES")
		if err != nil {
			lastErr = err
			continue
		}
		return parseNodes(out), nil
	}
	return nil, fmt.Errorf("no live node answers CLUSTER NODES: %v", lastErr)
}

func parseNodes(out string) []NodeInfo {
	var nodes []NodeInfo
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		flags := strings.Split(f[2], ",")
		ni := NodeInfo{ID: f[0], Addr: addr, Master: slices.Contains(flags, "master"),
			Failed: slices.Contains(flags, "fail") || slices.Contains(flags, "fail?")}
		if f[3] != "-" {
			ni.MasterID = f[3]
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			lo, hi, found := strings.Cut(r, "-")
			a, _ := strconv.Atoi(lo)
			b := a
			if found {
				b, _ = strconv.Atoi(hi)
			}
			ni.Slots += b - a + 1
		}
		nodes = append(nodes, ni)
	}
	return nodes
}

// Masters returns the addresses of the masters that serve slots and are not
// flagged failed, in address order.
func (c *Cluster) Masters() ([]string, error) {
	nodes, err := c.Topology()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes {
		if n.Master && !n.Failed && n.Slots > 0 {
			out = append(out, n.Addr)
		}
	}
	slices.Sort(out)
	return out, nil
}

// ReplicaOf returns the address of a replica of the master at addr.
func (c *Cluster) ReplicaOf(addr string) (string, error) {
	nodes, err := c.Topology()
	if err != nil {
		return "", err
	}
	var id string
	for _, n := range nodes {
		if n.Addr == addr {
			id = n.ID
		}
	}
	for _, n := range nodes {
		if id != "" && n.MasterID == id && !n.Failed {
			return n.Addr, nil
		}
	}
	return "", fmt.Errorf("no replica of %s", addr)
}

// Node returns the node with this address.
func (c *Cluster) Node(addr string) *ClusterNode {
	for _, n := range c.Nodes {
		if n.Addr() == addr {
			return n
		}
	}
	c.t.Fatalf("no cluster node %s", addr)
	return nil
}

// Kill stops the node at addr with SIGKILL.
func (c *Cluster) Kill(addr string) { c.Node(addr).kill() }

// WaitPromoted waits until the replica at addr is a master serving slots and
// every live node reports cluster_state:ok again. It returns how long that
// took.
func (c *Cluster) WaitPromoted(addr string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		out, err := nodeCmd(addr, "CLUSTER", "NODES")
		if err == nil {
			for _, n := range parseNodes(out) {
				if n.Addr == addr && n.Master && n.Slots > 0 {
					if err := c.WaitHealthy(time.Until(deadline)); err != nil {
						return time.Since(start), err
					}
					return time.Since(start), nil
				}
			}
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("replica %s not promoted after %s (%v)", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitHealthy waits until every live node reports cluster_state:ok, all
// 16384 slots are assigned, and every live replica's link to its master is up.
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		why := ""
		for _, n := range c.live() {
			info, err := nodeCmd(n.Addr(), "CLUSTER", "INFO")
			switch {
			case err != nil:
				why = fmt.Sprintf("%s: %v", n.Addr(), err)
			case !strings.Contains(info, "cluster_state:ok"):
				why = n.Addr() + ": cluster_state not ok"
			case !strings.Contains(info, "cluster_slots_assigned:16384"):
				why = n.Addr() + ": slots not all assigned"
			}
			if why != "" {
				break
			}
			repl, err := nodeCmd(n.Addr(), "INFO", "replication")
			if err == nil && strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
				why = n.Addr() + ": replica link not up"
				break
			}
		}
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not healthy after %s: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nodeCmd runs one command on one node and returns its text reply.
func nodeCmd(addr string, args ...any) (string, error) {
	rdb := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: time.Second, MaxRetries: -1, Protocol: 2, DisableIdentity: true})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return rdb.Do(ctx, args...).Text()
}

// NodeClient returns a plain client of one node (scans of a master's keys,
// SCRIPT FLUSH, INFO); it is closed with the test.
func (c *Cluster) NodeClient(addr string) *goredis.Client {
	rdb := goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	c.t.Cleanup(func() { rdb.Close() })
	return rdb
}
