package engine

import "sync"

// keyedLocks hands out one lock per key (a card, a user-season), created on
// first use and dropped when nobody holds or waits for it. Unlike a fixed set
// of striped locks, a request stuck on one key (a load waiting on a stalled
// MariaDB) never blocks requests for other keys.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.RWMutex
	refs int
}

// get returns the key's lock with a reference taken; put gives it back.
func (k *keyedLocks) get(key string) *keyedLock {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	return l
}

func (k *keyedLocks) put(key string, l *keyedLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(k.locks, key)
	}
}

// Lock takes the key's lock exclusively and returns its unlock.
func (k *keyedLocks) Lock(key string) (unlock func()) {
	l := k.get(key)
	l.Lock()
	return func() { l.Unlock(); k.put(key, l) }
}

// RLock takes the key's lock shared and returns its unlock.
func (k *keyedLocks) RLock(key string) (unlock func()) {
	l := k.get(key)
	l.RLock()
	return func() { l.RUnlock(); k.put(key, l) }
}
