package engine

import (
	"context"
	"errors"
	"time"

	"github.com/srsproxy/srsproxy/backend/mariadb"
)

// Task is a periodic job that runs once per period across every sidecar:
// each sidecar's scheduler tries it, one takes its MariaDB lock, and the job
// row named after the period records that it ran.
type Task struct {
	Name  string
	Every time.Duration // period: 24h runs once per UTC day
	Run   func(ctx context.Context) (result string, err error)
}

// RunDue runs the tasks whose current period has not run yet anywhere. It
// returns the names of the tasks this sidecar ran.
func (e *Engine) RunDue(ctx context.Context, tasks []Task) []string {
	var ran []string
	for _, t := range tasks {
		period := e.cfg.Now().UTC().Truncate(t.Every)
		id := t.Name + "@" + period.Format(time.RFC3339)
		if ok, err := e.runTask(ctx, t, id); err != nil {
			e.log.Error("scheduled task", "task", t.Name, "period", period, "err", err)
		} else if ok {
			ran = append(ran, t.Name)
		}
	}
	return ran
}

func (e *Engine) runTask(ctx context.Context, t Task, id string) (bool, error) {
	if j, ok, err := e.store.Job(ctx, id); err != nil || ok && j.State == mariadb.JobDone {
		return false, err
	}
	lock, ok, err := e.store.TryLock(ctx, "task:"+t.Name)
	if err != nil || !ok {
		return false, err // another sidecar is running it
	}
	defer lock.Release()
	// Re-check under the lock: another sidecar may have just finished it.
	j, found, err := e.store.Job(ctx, id)
	if err != nil || found && j.State == mariadb.JobDone {
		return false, err
	}
	now := e.cfg.Now()
	j = mariadb.Job{ID: id, Kind: t.Name, State: mariadb.JobRunning, Owner: e.cfg.Sidecar, Started: now, Updated: now}
	if found {
		err = e.store.UpdateJob(ctx, j)
	} else {
		err = e.store.CreateJob(ctx, j)
	}
	if err != nil {
		return false, err
	}
	rctx, stop := e.whileHeld(ctx, lock)
	defer stop()
	j.Result, err = t.Run(rctx)
	j.State, j.Finished = mariadb.JobDone, e.cfg.Now()
	if err != nil {
		j.State, j.Error = mariadb.JobFailed, err.Error()
	}
	if uerr := e.store.UpdateJob(context.WithoutCancel(ctx), j); uerr != nil {
		err = errors.Join(err, uerr)
	}
	e.log.Info("scheduled task ran", "task", t.Name, "job", id, "state", j.State, "result", j.Result)
	return true, err
}

// StartScheduler checks the tasks every tick until Stop; a task interrupted
// by shutdown runs again in the same period on the next start.
func (e *Engine) StartScheduler(ctx context.Context, tasks []Task, tick time.Duration) {
	e.safe.wg.Add(1)
	go func() {
		defer e.safe.wg.Done()
		ctx, cancel := e.untilStop(ctx)
		defer cancel()
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			e.RunDue(ctx, tasks)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// untilStop returns a context that also ends when the engine stops.
func (e *Engine) untilStop(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-e.safe.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
