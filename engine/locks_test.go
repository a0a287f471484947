package engine

import (
	"sync"
	"testing"
)

// Keyed locks exclude per key, let other keys through, and forget a key once
// nobody holds it.
func TestKeyedLocks(t *testing.T) {
	t.Parallel()
	var k keyedLocks
	unlockA := k.Lock("a")
	done := make(chan struct{})
	go func() { k.Lock("b")(); close(done) }()
	<-done // another key is not blocked
	var wg sync.WaitGroup
	got := make(chan struct{})
	wg.Add(1)
	go func() { defer wg.Done(); k.RLock("a")(); close(got) }()
	select {
	case <-got:
		t.Fatal("RLock of a held key did not wait")
	default:
	}
	unlockA()
	wg.Wait()
	for i := range k.shards {
		if n := len(k.shards[i].locks); n != 0 {
			t.Fatalf("shard %d keeps %d locks nobody holds", i, n)
		}
	}
}
