package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// Concurrent reads through the batcher each get their own key's value (or
// Nil), however they were grouped into pipelines; after close, reads fail
// at once instead of hanging.
func TestVersionReadsBatch(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	for i := range 50 {
		c.rdb.Set(ctx, fmt.Sprintf("%s:k%d", c.opts.Prefix, i), fmt.Sprint(i*7), 0)
	}
	v := newVersionReads(c.rdb, c.opts.ReadTimeout)
	var wg sync.WaitGroup
	for g := range 400 {
		wg.Go(func() {
			i := g % 60 // keys 50–59 do not exist
			got, err := v.get(ctx, fmt.Sprintf("%s:k%d", c.opts.Prefix, i))
			switch {
			case i >= 50 && !errors.Is(err, goredis.Nil):
				t.Errorf("k%d: %q %v, want Nil", i, got, err)
			case i < 50 && (err != nil || got != fmt.Sprint(i*7)):
				t.Errorf("k%d: %q %v, want %d", i, got, err, i*7)
			}
		})
	}
	wg.Wait()
	v.close()
	if _, err := v.get(ctx, c.opts.Prefix+":k1"); !errors.Is(err, errClosedBatcher) {
		t.Fatalf("read after close: %v", err)
	}
}
