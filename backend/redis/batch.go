package redis

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// autoPipeline coalesces the commands of concurrent requests into
// pipelines (auto-pipelining): a worker takes every command waiting when it
// is free and sends them in one write, so N concurrent version reads or
// review swaps cost one round trip, one pooled connection and two syscalls
// instead of N of each. A lone command is sent at once; nothing waits for a
// batch to fill.
type autoPipeline struct {
	rdb     goredis.UniversalClient
	timeout time.Duration // per batch: the cache's read timeout
	in      chan queuedCmd
	stop    chan struct{}
	wg      sync.WaitGroup
}

type queuedCmd struct {
	cmd  goredis.Cmder
	done chan struct{} // closed once cmd holds its result
}

// pipelineWorkers is the number of batches in flight at once; while they
// are out, new commands queue up and form the next batches.
const pipelineWorkers = 2

// maxPipeline bounds one pipeline.
const maxPipeline = 256

func newAutoPipeline(rdb goredis.UniversalClient, timeout time.Duration) *autoPipeline {
	p := &autoPipeline{rdb: rdb, timeout: timeout, in: make(chan queuedCmd, 4*maxPipeline), stop: make(chan struct{})}
	for range pipelineWorkers {
		p.wg.Go(p.work)
	}
	return p
}

// close stops the workers; commands still queued fail with errClosedBatcher.
func (p *autoPipeline) close() {
	close(p.stop)
	p.wg.Wait()
	for {
		select {
		case q := <-p.in:
			q.cmd.SetErr(errClosedBatcher)
			close(q.done)
		default:
			return
		}
	}
}

var errClosedBatcher = errors.New("redis: cache closed")

// do runs cmd in a batch and returns its error; cmd holds the result. A
// caller that gives up (ctx) must not read cmd: it may still run.
func (p *autoPipeline) do(ctx context.Context, cmd goredis.Cmder) error {
	select {
	case <-p.stop:
		return errClosedBatcher
	default:
	}
	q := queuedCmd{cmd: cmd, done: make(chan struct{})}
	select {
	case p.in <- q:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.stop:
		return errClosedBatcher
	}
	select {
	case <-q.done:
		return cmd.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// get reads one key through a batch; goredis.Nil when it does not exist.
func (p *autoPipeline) get(ctx context.Context, key string) (string, error) {
	cmd := goredis.NewStringCmd(ctx, "get", key)
	if err := p.do(ctx, cmd); err != nil {
		return "", err
	}
	return cmd.Val(), nil
}

// runScript runs s through a batch with EVALSHA, falling back to s.Run
// (EVAL) when the server does not have the script (a restarted Redis).
func (p *autoPipeline) runScript(ctx context.Context, s *goredis.Script, keys []string, args ...any) (any, error) {
	argv := make([]any, 0, 3+len(keys)+len(args))
	argv = append(argv, "evalsha", s.Hash(), len(keys))
	for _, k := range keys {
		argv = append(argv, k)
	}
	argv = append(argv, args...)
	cmd := goredis.NewCmd(ctx, argv...)
	err := p.do(ctx, cmd)
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		return s.Run(ctx, p.rdb, keys, args...).Result()
	}
	if err != nil {
		return nil, err
	}
	return cmd.Val(), nil
}

func (p *autoPipeline) work() {
	batch := make([]queuedCmd, 0, maxPipeline)
	for {
		select {
		case q := <-p.in:
			batch = append(batch[:0], q)
		case <-p.stop:
			return
		}
	more:
		for len(batch) < maxPipeline {
			select {
			case q := <-p.in:
				batch = append(batch, q)
			default:
				break more
			}
		}
		p.send(batch)
	}
}

// send runs one batch as a pipeline; each command carries its own result.
func (p *autoPipeline) send(batch []queuedCmd) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	if len(batch) == 1 {
		_ = p.rdb.Process(ctx, batch[0].cmd)
	} else {
		pipe := p.rdb.Pipeline()
		for _, q := range batch {
			_ = pipe.Process(ctx, q.cmd)
		}
		_, _ = pipe.Exec(ctx)
	}
	for _, q := range batch {
		close(q.done)
	}
}
