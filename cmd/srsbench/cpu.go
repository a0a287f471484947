package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc CPU times on Linux.
const clockTicks = 100

// procCPU returns the CPU seconds (user + system) a process has used.
func procCPU(pid int) (float64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / clockTicks, true
}

// hostBusy returns the busy CPU seconds of the whole machine (all cores).
func hostBusy() float64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	fields := strings.Fields(sc.Text())
	var busy float64
	for i, v := range fields[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest times are already counted in user
			break
		}
		busy += n
	}
	return busy / clockTicks
}

// findProcess returns the pid of the first process whose command name is one of names.
func findProcess(names ...string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(b))
		for _, n := range names {
			if comm == n {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
				return pid
			}
		}
	}
	return 0
}

// cpuSnap is the CPU seconds of the watched processes and the host at one instant.
type cpuSnap struct {
	at    time.Time
	procs map[string]float64
	host  float64
}

func takeSnap(pids map[string]int) cpuSnap {
	s := cpuSnap{at: time.Now(), procs: map[string]float64{}, host: hostBusy()}
	for name, pid := range pids {
		if pid == 0 {
			continue
		}
		if v, ok := procCPU(pid); ok {
			s.procs[name] = v
		}
	}
	return s
}

// cores is the CPU each process used between two snapshots, in cores; "host"
// is the whole machine (what is not ours is other load on the machine).
func cores(a, b cpuSnap) map[string]float64 {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 || a.procs == nil {
		return nil
	}
	out := map[string]float64{"host": round2((b.host - a.host) / secs)}
	for name, v := range b.procs {
		if v0, ok := a.procs[name]; ok {
			out[name] = round2((v - v0) / secs)
		}
	}
	return out
}

// quiesce waits until the machine is mostly idle (less than a quarter of
// the cores busy over a second), at most max; it returns the wait.
func quiesce(max time.Duration, cores int) time.Duration {
	t0 := time.Now()
	for time.Since(t0) < max {
		a := hostBusy()
		time.Sleep(time.Second)
		if (hostBusy()-a)/float64(cores) < 0.25 {
			break
		}
	}
	return time.Since(t0).Round(time.Second)
}
