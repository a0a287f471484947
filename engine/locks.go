package engine

import (
	"hash/maphash"
	"sync"
)

// keyedLocks hands out one lock per key (a card, a user-season), created on
// first use and dropped when nobody holds or waits for it. Unlike a fixed set
// of striped locks, a request stuck on one key (a load waiting on a stalled
// MariaDB) never blocks requests for other keys. The table is sharded so the
// bookkeeping of concurrent requests does not queue on one mutex.
type keyedLocks struct {
	seed   maphash.Seed
	once   sync.Once
	shards [64]lockShard
}

type lockShard struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.RWMutex
	refs int
}

func (k *keyedLocks) shard(key string) *lockShard {
	k.once.Do(func() { k.seed = maphash.MakeSeed() })
	return &k.shards[maphash.String(k.seed, key)%uint64(len(k.shards))]
}

// get returns the key's lock with a reference taken; put gives it back.
func (s *lockShard) get(key string) *keyedLock {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks == nil {
		s.locks = make(map[string]*keyedLock)
	}
	l := s.locks[key]
	if l == nil {
		l = &keyedLock{}
		s.locks[key] = l
	}
	l.refs++
	return l
}

func (s *lockShard) put(key string, l *keyedLock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(s.locks, key)
	}
}

// Lock takes the key's lock exclusively and returns its unlock.
func (k *keyedLocks) Lock(key string) (unlock func()) {
	s := k.shard(key)
	l := s.get(key)
	l.Lock()
	return func() { l.Unlock(); s.put(key, l) }
}

// RLock takes the key's lock shared and returns its unlock.
func (k *keyedLocks) RLock(key string) (unlock func()) {
	s := k.shard(key)
	l := s.get(key)
	l.RLock()
	return func() { l.RUnlock(); s.put(key, l) }
}
