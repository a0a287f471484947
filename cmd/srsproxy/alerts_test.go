package main

// The alert rules and the Grafana dashboard in deploy/ as code: promtool
// checks and unit-tests the rules, and every metric (and literal label
// value) they query is scraped from a running sidecar's /metrics.

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/internal/faults"
)

const (
	alertRules     = "../../deploy/prometheus/srsproxy-alerts.yml"
	alertRuleTests = "../../deploy/prometheus/srsproxy-alerts.test.yml"
	dashboard      = "../../deploy/grafana/srsproxy-dashboard.json"
)

func promtool(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install the Debian package prometheus (scripts/test-deps does, as root)")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestAlertRulesPromtool(t *testing.T) {
	t.Parallel()
	promtool(t, "check", "rules", alertRules)
	promtool(t, "test", "rules", alertRuleTests)
}

// TestDashboardQueriesParse: every query of the Grafana dashboard, with its
// variables filled in, is valid PromQL (promtool parses it as a recording
// rule).
func TestDashboardQueriesParse(t *testing.T) {
	t.Parallel()
	vars := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*", "${datasource}", "")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, expr := range queries(t)["dashboard"] {
		if strings.HasPrefix(expr, "label_values(") {
			continue // a Grafana template function, not PromQL
		}
		q, err := json.Marshal(vars.Replace(expr)) // a JSON string is a YAML string
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("      - record: dashboard:query" + strconv.Itoa(i) + "\n        expr: " + string(q) + "\n")
	}
	file := t.TempDir() + "/dashboard-rules.yml"
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", file)
}

// selector is a metric name with the literal label matchers (label="value")
// written next to it in a query.
type selector struct {
	metric string
	labels [][2]string
}

var (
	metricRE  = regexp.MustCompile(`\bsrsproxy_[a-z0-9_]+\b(\{[^}]*\})?`)
	matcherRE = regexp.MustCompile(`([a-z_]+)\s*(=~|!=|!~|=)\s*"([^"]*)"`)
)

// selectors extracts every srsproxy_ metric an expression reads, with its
// equality matchers on literal values (not regexes or dashboard variables).
func selectors(expr string) []selector {
	var out []selector
	for _, m := range metricRE.FindAllStringSubmatch(expr, -1) {
		name, _, _ := strings.Cut(m[0], "{")
		s := selector{metric: name}
		for _, lm := range matcherRE.FindAllStringSubmatch(m[1], -1) {
			if lm[2] == "=" && !strings.Contains(lm[3], "$") {
				s.labels = append(s.labels, [2]string{lm[1], lm[3]})
			}
		}
		out = append(out, s)
	}
	return out
}

// queries returns the expressions of the rules file and of the dashboard.
func queries(t *testing.T) map[string][]string {
	t.Helper()
	rules, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	// expr: one line, or a block scalar (|) of the lines indented below it.
	lines := strings.Split(string(rules), "\n")
	for i := 0; i < len(lines); i++ {
		_, expr, ok := strings.Cut(lines[i], "expr:")
		if !ok {
			continue
		}
		if expr = strings.TrimSpace(expr); expr == "|" {
			expr = ""
			indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
			for i+1 < len(lines) && len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent {
				i++
				expr += " " + strings.TrimSpace(lines[i])
			}
		}
		out["alerts"] = append(out["alerts"], expr)
	}
	raw, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if s, ok := val.(string); ok && (k == "expr" || k == "definition") {
					out["dashboard"] = append(out["dashboard"], s)
				}
				walk(val)
			}
		case []any:
			for _, val := range x {
				walk(val)
			}
		}
	}
	walk(dash)
	if len(out["alerts"]) < 10 || len(out["dashboard"]) < 20 {
		t.Fatalf("found %d alert and %d dashboard queries; the parsing is broken", len(out["alerts"]), len(out["dashboard"]))
	}
	return out
}

// TestDeployQueriesUseScrapedMetrics runs a sidecar through reviews, due
// reads, a reconciliation and a rebuild, scrapes its /metrics and checks
// that every metric the alert rules and the dashboard query is there, with
// each literal label value they match on.
func TestDeployQueriesUseScrapedMetrics(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	admin := "127.0.0.1:" + strconv.Itoa(faults.FreePort(t))
	m := startMain(t, e, "--admin-listen", admin)
	c := client(t, m.Addr(), 3)
	const season = "SEASON-2026"
	createSeason(t, c, season)
	for i := range 20 {
		mustDo(t, c, "SRS.REVIEW", "p"+strconv.Itoa(i%4), season, "q"+strconv.Itoa(i), 3)
		mustDo(t, c, "SRS.DUE", "p"+strconv.Itoa(i%4), season)
	}
	mustDo(t, c, "SRS.RECONCILE", season)
	rebuild(t, c, season)
	// Drained: the drain metrics have observations.
	deadline := time.Now().Add(30 * time.Second)
	for srsStatus(t, c)["drained"].(int64) < 20 {
		if time.Now().After(deadline) {
			t.Fatal("the reviews were not drained in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	series := map[string][]string{} // metric name → label sets of its samples
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		name, labels, _ := strings.Cut(name, "{")
		if labels == "" && strings.HasPrefix(rest, "{") {
			labels = rest
		}
		series[name] = append(series[name], labels)
	}

	used := map[string]bool{}
	for source, exprs := range queries(t) {
		for _, expr := range exprs {
			for _, s := range selectors(expr) {
				used[s.metric] = true
				sets, ok := series[s.metric]
				if !ok {
					t.Errorf("%s queries %s, which the sidecar does not export (in %q)", source, s.metric, expr)
					continue
				}
				for _, l := range s.labels {
					want := l[0] + `="` + l[1] + `"`
					if !slices.ContainsFunc(sets, func(ls string) bool { return strings.Contains(ls, want) }) {
						t.Errorf("%s queries %s{%s}; no scraped series has that label (in %q)", source, s.metric, want, expr)
					}
				}
			}
		}
	}
	if !t.Failed() {
		t.Logf("%d srsproxy metrics queried by the alerts and the dashboard, all scraped", len(used))
	}
}
