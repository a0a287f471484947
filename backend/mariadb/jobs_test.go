package mariadb

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	now := time.Date(2026, 5, 6, 7, 8, 9, 123_456_789, time.UTC)
	s.SetClock(func() time.Time { return now })
	ms := now.Truncate(time.Millisecond)

	rebuild := Job{ID: "job-1", Kind: "rebuild", Season: "SEASON-2026", Total: 1000, Owner: "node-1"}
	if err := s.CreateJob(ctx, rebuild); err != nil {
		t.Fatal(err)
	}
	want := rebuild
	want.State, want.Started, want.Updated = JobRunning, ms, ms
	if got, ok, err := s.Job(ctx, "job-1"); err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("Job = %+v, %v, %v\nwant %+v", got, ok, err, want)
	}
	if err := s.CreateJob(ctx, rebuild); !errors.Is(err, ErrJobExists) {
		t.Errorf("second CreateJob err = %v, want ErrJobExists", err)
	}
	if err := s.CreateJob(ctx, Job{Kind: "x"}); err == nil {
		t.Error("CreateJob accepted an empty id")
	}
	if _, ok, err := s.Job(ctx, "job-0"); err != nil || ok {
		t.Errorf("Job(missing) = %v, %v", ok, err)
	}

	// Two more, started earlier and later, in other states.
	older := Job{ID: "job-0", Kind: "nightly", State: JobDone, Started: ms.Add(-time.Hour),
		Finished: ms.Add(-time.Minute), Result: `{"archived":["SEASON-2020"]}`}
	later := Job{ID: "job-2", Kind: "reconcile", Started: ms.Add(time.Hour)}
	for _, j := range []Job{later, older} {
		if err := s.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}

	// Progress, then the end, each with Updated moved to the clock.
	now = now.Add(90 * time.Second)
	upd := want
	upd.Processed, upd.CursorPlayer, upd.CursorQuestion = 500, "p42", "q7"
	if err := s.UpdateJob(ctx, upd); err != nil {
		t.Fatal(err)
	}
	upd.Updated = now.Truncate(time.Millisecond)
	if got, _, _ := s.Job(ctx, "job-1"); !reflect.DeepEqual(got, upd) {
		t.Errorf("after progress:\n got %+v\nwant %+v", got, upd)
	}
	if err := s.UpdateJob(ctx, upd); err != nil { // nothing changed: still no error
		t.Errorf("repeat UpdateJob: %v", err)
	}
	now = now.Add(time.Minute)
	upd.State, upd.Processed, upd.Finished = JobFailed, 1000, now.Truncate(time.Millisecond)
	upd.Error, upd.Result, upd.Owner = "boom: "+strings.Repeat("x", 1000), `{"loaded":1000}`, "node-2"
	upd.Kind, upd.Season, upd.Started = "changed", "changed", time.Time{} // immutable: ignored
	if err := s.UpdateJob(ctx, upd); err != nil {
		t.Fatal(err)
	}
	upd.Kind, upd.Season, upd.Started, upd.Updated = want.Kind, want.Season, want.Started, now.Truncate(time.Millisecond)
	if got, _, _ := s.Job(ctx, "job-1"); !reflect.DeepEqual(got, upd) {
		t.Errorf("after failure:\n got %+v\nwant %+v", got, upd)
	}
	if err := s.UpdateJob(ctx, Job{ID: "job-9", State: JobDone}); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("UpdateJob(unknown) err = %v, want ErrUnknownJob", err)
	}

	ids := func(state string) []string {
		t.Helper()
		jobs, err := s.Jobs(ctx, state)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, j := range jobs {
			out = append(out, j.ID)
		}
		return out
	}
	for state, want := range map[string][]string{
		"":           {"job-0", "job-1", "job-2"},
		JobRunning:   {"job-2"},
		JobDone:      {"job-0"},
		JobFailed:    {"job-1"},
		JobCancelled: nil,
	} {
		if got := ids(state); !reflect.DeepEqual(got, want) {
			t.Errorf("Jobs(%q) = %v, want %v", state, got, want)
		}
	}
}
