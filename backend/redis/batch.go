package redis

import (
	"context"
	"errors"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// versionReads coalesces the version GETs of concurrent requests into
// pipelines (auto-pipelining): a worker takes every read waiting when it
// is free and sends them in one write, so N concurrent due lists cost one
// round trip, one pooled connection and two syscalls instead of N of each.
// A lone read is sent at once; nothing waits for a batch to fill.
type versionReads struct {
	rdb     goredis.UniversalClient
	timeout time.Duration // per batch: the cache's read timeout
	in      chan versionRead
	stop    chan struct{}
	wg      sync.WaitGroup
}

type versionRead struct {
	key  string
	done chan versionResult // buffered: a worker never blocks on a caller that left
}

type versionResult struct {
	val string
	err error
}

// versionWorkers is the number of batches in flight at once; while they are
// out, new reads queue up and form the next batches.
const versionWorkers = 2

// maxVersionBatch bounds one pipeline.
const maxVersionBatch = 256

func newVersionReads(rdb goredis.UniversalClient, timeout time.Duration) *versionReads {
	v := &versionReads{rdb: rdb, timeout: timeout, in: make(chan versionRead, 4*maxVersionBatch), stop: make(chan struct{})}
	for range versionWorkers {
		v.wg.Go(v.work)
	}
	return v
}

// close stops the workers; reads still queued get errClosedBatcher.
func (v *versionReads) close() {
	close(v.stop)
	v.wg.Wait()
	for {
		select {
		case r := <-v.in:
			r.done <- versionResult{err: errClosedBatcher}
		default:
			return
		}
	}
}

var errClosedBatcher = errors.New("redis: cache closed")

// get reads one key through a batch; goredis.Nil when it does not exist.
func (v *versionReads) get(ctx context.Context, key string) (string, error) {
	select {
	case <-v.stop:
		return "", errClosedBatcher
	default:
	}
	r := versionRead{key: key, done: make(chan versionResult, 1)}
	select {
	case v.in <- r:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-v.stop:
		return "", errClosedBatcher
	}
	select {
	case res := <-r.done:
		return res.val, res.err
	case <-ctx.Done():
		return "", ctx.Err()
	case <-v.stop:
		select { // a worker may have answered before it stopped
		case res := <-r.done:
			return res.val, res.err
		default:
			return "", errClosedBatcher
		}
	}
}

func (v *versionReads) work() {
	batch := make([]versionRead, 0, maxVersionBatch)
	cmds := make([]*goredis.StringCmd, 0, maxVersionBatch)
	for {
		select {
		case r := <-v.in:
			batch = append(batch[:0], r)
		case <-v.stop:
			return
		}
	more:
		for len(batch) < maxVersionBatch {
			select {
			case r := <-v.in:
				batch = append(batch, r)
			default:
				break more
			}
		}
		v.send(batch, cmds[:0])
	}
}

// send runs one batch as a pipeline and hands each caller its result.
func (v *versionReads) send(batch []versionRead, cmds []*goredis.StringCmd) {
	ctx, cancel := context.WithTimeout(context.Background(), v.timeout)
	defer cancel()
	if len(batch) == 1 {
		val, err := v.rdb.Get(ctx, batch[0].key).Result()
		batch[0].done <- versionResult{val, err}
		return
	}
	pipe := v.rdb.Pipeline()
	for _, r := range batch {
		cmds = append(cmds, pipe.Get(ctx, r.key))
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, r := range batch {
		val, err := cmds[i].Result()
		r.done <- versionResult{val, err}
	}
}
