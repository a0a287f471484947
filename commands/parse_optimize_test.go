package commands

import (
	"strings"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/engine"
)

func TestParseOptimize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []any
		want engine.OptimizeRequest
	}{
		{[]any{"SRS.OPTIMIZE", "SEASON-2026"}, engine.OptimizeRequest{Season: "SEASON-2026"}},
		{[]any{"srs.optimize", "SEASON-2026", "since", "2026-09-01", "MinReviews", 1000},
			engine.OptimizeRequest{Season: "SEASON-2026", Since: time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), MinReviews: 1000}},
	} {
		got, err := ParseOptimize(argv(tc.args...))
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"SRS.OPTIMIZE", "season-x"}, "season"},
		{[]any{"SRS.OPTIMIZE", "SEASON-2026", "SINCE"}, "SINCE"},
		{[]any{"SRS.OPTIMIZE", "SEASON-2026", "SINCE", "01/09/2026"}, "SINCE"},
		{[]any{"SRS.OPTIMIZE", "SEASON-2026", "MINREVIEWS", 0}, "MINREVIEWS"},
		{[]any{"SRS.OPTIMIZE", "SEASON-2026", "MINREVIEWS", "x"}, "MINREVIEWS"},
		{[]any{"SRS.OPTIMIZE", "SEASON-2026", "MINREVIEWS", 5, "MINREVIEWS", 6}, "MINREVIEWS"},
		{[]any{"SRS.OPTIMIZE", "SEASON-2026", "EPOCHS", 5}, "EPOCHS"},
	} {
		if _, err := ParseOptimize(argv(tc.args...)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}

func TestParseParamsFromJob(t *testing.T) {
	t.Parallel()
	r, err := ParseSeason(argv("SRS.SEASON", "SET", "SEASON-2026", "PARAMS", "from", "job", "01ab-cd", "RETENTION", 0.85))
	if err != nil || r.Change.ParamsFromJob != "01ab-cd" || r.Change.Params != nil || r.Change.Retention == nil {
		t.Errorf("PARAMS FROM JOB: %+v, %v", r.Change, err)
	}
	for _, args := range [][]any{
		{"SRS.SEASON", "SET", "SEASON-2026", "PARAMS", "FROM"},
		{"SRS.SEASON", "SET", "SEASON-2026", "PARAMS", "FROM", "id"},
		{"SRS.SEASON", "SET", "SEASON-2026", "PARAMS", "FROM", "JOB"},
	} {
		if _, err := ParseSeason(argv(args...)); err == nil || !strings.Contains(err.Error(), "PARAMS FROM") {
			t.Errorf("%v: err %v, want one naming PARAMS FROM", args, err)
		}
	}
}
